#include "tools/linkem/scenario.h"

#include <algorithm>
#include <stdexcept>
#include <toml++/toml.h>

namespace triglav::linkem {
namespace {

[[noreturn]] void fail(const std::string& src, const toml::node& n, const std::string& msg) {
  throw std::runtime_error(src + " line " + std::to_string(n.source().begin.line) + ": " + msg);
}

std::string text_of(const std::string& src, const std::string& key, const toml::node& n) {
  if (auto s = n.value<std::string>()) return *s;
  if (auto i = n.value<std::int64_t>()) return std::to_string(*i);
  if (auto d = n.value<double>()) return std::to_string(*d);
  fail(src, n, "'" + key + "' must be a string such as \"20mbit\", \"60ms\" or \"2%\"");
}

// Applies one parameter to p. Returns false if the key is not a link parameter.
bool apply(const std::string& src, const std::string& key, const toml::node& n, LinkParams& p) {
  auto bad = [&](const char* what) { fail(src, n, "'" + key + "': expected " + what); };
  if (key == "rate") {
    if (!parse_rate(text_of(src, key, n), p.rate_bps)) bad("a rate such as \"20mbit\" (0 = unlimited)");
  } else if (key == "delay") {
    if (!parse_duration(text_of(src, key, n), p.delay_ns)) bad("a duration such as \"60ms\"");
  } else if (key == "jitter") {
    if (!parse_duration(text_of(src, key, n), p.jitter_ns)) bad("a duration such as \"15ms\"");
  } else if (key == "loss") {
    if (!parse_percent(text_of(src, key, n), p.loss)) bad("a percentage such as \"2%\"");
  } else if (key == "burst_enter") {
    if (!parse_percent(text_of(src, key, n), p.ge_enter)) bad("a percentage such as \"0.5%\"");
  } else if (key == "burst_exit") {
    if (!parse_percent(text_of(src, key, n), p.ge_exit) || p.ge_exit <= 0) bad("a percentage above 0%");
  } else if (key == "duplicate") {
    if (!parse_percent(text_of(src, key, n), p.duplicate)) bad("a percentage such as \"1%\"");
  } else if (key == "queue") {
    if (!parse_size(text_of(src, key, n), p.queue_bytes) || p.queue_bytes < 1500) bad("a size of at least 1500 bytes, such as \"64kb\"");
  } else if (key == "reorder") {
    auto b = n.value<bool>();
    if (!b) bad("true or false");
    p.reorder = *b;
  } else if (key == "outage") {
    auto b = n.value<bool>();
    if (!b) bad("true or false");
    p.down = *b;
  } else {
    return false;
  }
  return true;
}

double lerp(double a, double b, double f) { return a + (b - a) * f; }

LinkParams interpolate(const LinkParams& a, const LinkParams& b, double f) {
  LinkParams p = b;
  p.rate_bps = (a.rate_bps > 0 && b.rate_bps > 0) ? lerp(a.rate_bps, b.rate_bps, f) : b.rate_bps;
  p.delay_ns = static_cast<std::int64_t>(lerp(static_cast<double>(a.delay_ns), static_cast<double>(b.delay_ns), f));
  p.jitter_ns = static_cast<std::int64_t>(lerp(static_cast<double>(a.jitter_ns), static_cast<double>(b.jitter_ns), f));
  p.loss = lerp(a.loss, b.loss, f);
  p.down = a.down;
  return p;
}

}  // namespace

LinkParams LinkSchedule::at(std::int64_t t, bool up) const {
  // The segment in force is the last one with at <= t; a ramping successor moves its
  // numbers towards its own values until it starts.
  std::size_t i = 0;
  while (i + 1 < segments.size() && segments[i + 1].at_ns <= t) ++i;
  const LinkParams& cur = up ? segments[i].up : segments[i].down;
  if (i + 1 < segments.size() && segments[i + 1].ramp) {
    const Segment& next = segments[i + 1];
    const double f = static_cast<double>(t - segments[i].at_ns) /
                     static_cast<double>(next.at_ns - segments[i].at_ns);
    return interpolate(cur, up ? next.up : next.down, std::clamp(f, 0.0, 1.0));
  }
  return cur;
}

const LinkSchedule* Scenario::link(const std::string& name) const {
  for (const auto& l : links)
    if (l.name == name) return &l;
  return nullptr;
}

Scenario parse_scenario(const std::string& text, const std::string& src) {
  toml::table t;
  try {
    t = toml::parse(text, src);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(src + " line " + std::to_string(e.source().begin.line) + ": " +
                             std::string(e.description()));
  }
  Scenario sc;
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key == "name") sc.name = v.value_or<std::string>("");
    else if (key == "about") sc.about = v.value_or<std::string>("");
    else if (key == "duration") {
      if (!parse_duration(text_of(src, key, v), sc.duration_ns)) fail(src, v, "'duration': expected a duration such as \"60s\"");
    } else if (key != "links") {
      fail(src, v, "unknown key '" + key + "' (allowed: name, about, duration, links)");
    }
  }
  const auto* links = t["links"].as_array();
  if (links == nullptr || links->empty()) throw std::runtime_error(src + ": no [[links]]");
  for (const auto& ln : *links) {
    const auto* lt = ln.as_table();
    if (lt == nullptr) fail(src, ln, "[[links]] entries must be tables");
    LinkSchedule ls;
    ls.name = (*lt)["name"].value_or<std::string>("");
    if (ls.name.empty()) fail(src, ln, "a link needs a name");
    const auto* segs = (*lt)["segments"].as_array();
    if (segs == nullptr || segs->empty()) fail(src, ln, "link '" + ls.name + "' has no [[links.segments]]");
    Segment prev;
    for (const auto& sn : *segs) {
      const auto* st = sn.as_table();
      if (st == nullptr) fail(src, sn, "segments must be tables");
      Segment seg = prev;
      seg.ramp = false;
      bool have_at = false;
      for (const auto& [k, v] : *st) {
        const std::string key(k.str());
        if (key == "at") {
          if (!parse_duration(text_of(src, key, v), seg.at_ns)) fail(src, v, "'at': expected a duration such as \"12s\"");
          have_at = true;
        } else if (key == "ramp") {
          seg.ramp = v.value_or(false);
        } else if (key.rfind("up_", 0) == 0) {
          if (!apply(src, key.substr(3), v, seg.up)) fail(src, v, "unknown key '" + key + "'");
        } else if (key.rfind("down_", 0) == 0) {
          if (!apply(src, key.substr(5), v, seg.down)) fail(src, v, "unknown key '" + key + "'");
        } else {
          const bool a = apply(src, key, v, seg.up);
          if (!a) fail(src, v, "unknown key '" + key + "' (rate, delay, jitter, reorder, loss, burst_enter, "
                               "burst_exit, duplicate, queue, outage, at, ramp; up_/down_ for one direction)");
          apply(src, key, v, seg.down);
        }
      }
      if (!have_at) fail(src, sn, "segment without 'at'");
      if (ls.segments.empty() ? seg.at_ns != 0 : seg.at_ns <= ls.segments.back().at_ns)
        fail(src, sn, "segments must start at \"0s\" and have increasing 'at'");
      ls.segments.push_back(seg);
      prev = seg;
    }
    sc.links.push_back(std::move(ls));
  }
  return sc;
}

Scenario load_scenario(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot read scenario " + path);
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return parse_scenario(text, path);
}

}  // namespace triglav::linkem
