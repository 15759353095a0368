#include "control/benchmark.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace triglav::ctl {
namespace {

std::string rate(double bps) {
  char b[32];
  if (bps >= 1e9) std::snprintf(b, sizeof b, "%.2f Gbit/s", bps / 1e9);
  else if (bps >= 1e6) std::snprintf(b, sizeof b, "%.1f Mbit/s", bps / 1e6);
  else std::snprintf(b, sizeof b, "%.0f kbit/s", bps / 1e3);
  return b;
}

// b - a for counters that restart with a new session (then b alone is the best guess).
std::uint64_t delta(std::uint64_t a, std::uint64_t b) { return b >= a ? b - a : b; }

const UplinkStatus* find(const std::vector<UplinkStatus>& v, unsigned id) {
  for (const auto& u : v)
    if (u.id == id) return &u;
  return nullptr;
}

const char* direction(const BenchOptions& o) {
  return o.upload && o.download ? "bidir" : o.download ? "download" : "upload";
}

struct Rates {
  double dt = 0, sent = 0, delivered = 0, received = 0, cpu = 0, loss = 0;
  std::uint64_t drops = 0;
};

Rates rates(const BenchSample& a, const BenchSample& b) {
  Rates r;
  r.dt = std::max(b.t - a.t, 1e-6);
  r.sent = static_cast<double>(delta(a.sent, b.sent)) * 8 / r.dt;
  r.delivered = static_cast<double>(delta(a.delivered, b.delivered)) * 8 / r.dt;
  r.received = static_cast<double>(delta(a.received, b.received)) * 8 / r.dt;
  r.cpu = (b.cpu_s - a.cpu_s) / r.dt * 100;
  r.drops = delta(a.drops, b.drops);
  r.loss = r.sent > 0 ? std::clamp(1 - r.delivered / r.sent, 0.0, 1.0) : 0;
  return r;
}

// Of what was sent from a to b, the share the server did not report received (b: once
// everything in flight arrived, so that both counts cover the same packets).
double loss(const BenchSample& a, const BenchSample& b) {
  const auto sent = static_cast<double>(delta(a.sent, b.sent));
  const auto delivered = static_cast<double>(delta(a.delivered, b.delivered));
  return sent > 0 ? std::clamp(1 - delivered / sent, 0.0, 1.0) : 0.0;
}

nlohmann::json uplinks_json(const BenchSample& a, const BenchSample& b, double dt) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& u : b.uplinks) {
    const UplinkStatus* p = find(a.uplinks, u.id);
    const UplinkStatus zero;
    if (p == nullptr) p = &zero;
    out.push_back({{"id", u.id},
                   {"name", u.name},
                   {"state", u.state},
                   {"rtt_ms", u.srtt_ms},
                   {"loss", u.loss},
                   {"sent_bps", static_cast<double>(delta(p->tx_bytes, u.tx_bytes)) * 8 / dt},
                   {"delivered_bps", static_cast<double>(delta(p->delivered_bytes, u.delivered_bytes)) * 8 / dt},
                   {"received_bps", static_cast<double>(delta(p->rx_bytes, u.rx_bytes)) * 8 / dt}});
  }
  return out;
}

// The rates from a to b; what the server reported delivered is taken at `drained` (b
// itself for an interval; for the totals a moment after the end, with all of it in).
// The server's counts arrive with the probes' answers (every 250 ms), so an interval's
// delivered figure lags its sent one: the loss is given for the totals only.
nlohmann::json record(const BenchSample& a, const BenchSample& b, const BenchSample& drained, bool total) {
  const Rates r = rates(a, b);
  const double delivered = static_cast<double>(delta(a.delivered, drained.delivered)) * 8 / r.dt;
  nlohmann::json up = {{"sent_bps", r.sent}, {"delivered_bps", delivered}};
  if (total) up["loss"] = loss(a, drained);
  return {{"start", a.t},
          {"end", b.t},
          {"upload", up},
          {"download", {{"received_bps", r.received}}},
          {"drops", r.drops},
          {"cpu_percent", r.cpu},
          {"uplinks", uplinks_json(a, b, r.dt)}};
}

}  // namespace

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

BenchReport::BenchReport(const BenchOptions& opt, std::FILE* out, std::FILE* progress)
    : opt_(opt), out_(out), progress_(progress), tty_(progress != nullptr && isatty(fileno(progress)) != 0) {}

void BenchReport::start(const BenchSample& s, const std::string& server) {
  first_ = last_ = s;
  server_ = server;
  if (opt_.json) return;
  std::string names;
  for (const auto& u : s.uplinks) names += (names.empty() ? "" : ", ") + u.name;
  std::fprintf(out_, "benchmark to %s: %u stream%s, %s, %.0f s, uplinks %s\n", server.c_str(), opt_.streams,
               opt_.streams == 1 ? "" : "s", direction(opt_), opt_.duration_s, names.c_str());
  std::fflush(out_);
}

std::string BenchReport::line(const BenchSample& a, const BenchSample& b) const {
  const Rates r = rates(a, b);
  char range[48], head[64];
  std::snprintf(range, sizeof range, "%.1f-%.1f", a.t, b.t);
  std::snprintf(head, sizeof head, "%11s s", range);
  std::string l = std::string("  ") + head;
  if (opt_.upload) l += "  up " + rate(r.sent) + " (delivered " + rate(r.delivered) + ")";
  if (opt_.download) l += "  down " + rate(r.received);
  char tail[64];
  std::snprintf(tail, sizeof tail, "  drops %llu  cpu %.0f %%", static_cast<unsigned long long>(r.drops), r.cpu);
  l += tail;
  for (const auto& u : b.uplinks) {
    const UplinkStatus* p = find(a.uplinks, u.id);
    const UplinkStatus zero;
    if (p == nullptr) p = &zero;
    const double bits = static_cast<double>(opt_.upload ? delta(p->tx_bytes, u.tx_bytes) : 0) +
                        static_cast<double>(opt_.download ? delta(p->rx_bytes, u.rx_bytes) : 0);
    char rtt[32];
    if (u.srtt_ms >= 0) std::snprintf(rtt, sizeof rtt, "%.2f ms", u.srtt_ms);
    else std::snprintf(rtt, sizeof rtt, "- ms");
    char loss[32];
    std::snprintf(loss, sizeof loss, "%.1f %%", u.loss * 100);
    l += " | " + u.name + " " + rate(bits * 8 / r.dt) + " " + rtt + " " + loss;
    if (u.state != "healthy") l += " " + u.state;
  }
  return l;
}

void BenchReport::interval(const BenchSample& s) {
  if (opt_.json) {
    records_.push_back(record(last_, s, s, false).dump());
  } else {
    if (tty_) std::fputs("\r\033[K", progress_);
    std::fprintf(out_, "%s\n", line(last_, s).c_str());
    std::fflush(out_);
  }
  last_ = s;
}

void BenchReport::progress(const BenchSample& s) {
  if (!tty_) return;
  const Rates r = rates(last_, s);
  std::fprintf(progress_, "\r\033[K  %.1f / %.0f s  %s%s%s", s.t, opt_.duration_s,
               opt_.upload ? ("up " + rate(r.sent)).c_str() : "", opt_.upload && opt_.download ? "  " : "",
               opt_.download ? ("down " + rate(r.received)).c_str() : "");
  std::fflush(progress_);
}

void BenchReport::finish(const BenchSample& end, const BenchSample& drained) {
  if (tty_) {
    std::fputs("\r\033[K", progress_);
    std::fflush(progress_);
  }
  const Rates r = rates(first_, end);
  const double delivered = static_cast<double>(delta(first_.delivered, drained.delivered)) * 8 / r.dt;
  const double lost = loss(first_, drained);
  if (opt_.json) {
    nlohmann::json total = record(first_, end, drained, true);
    total["upload"]["sent_bytes"] = delta(first_.sent, drained.sent);
    total["upload"]["delivered_bytes"] = delta(first_.delivered, drained.delivered);
    total["download"]["received_bytes"] = delta(first_.received, end.received);
    nlohmann::json j = {{"server", server_},
                        {"streams", opt_.streams},
                        {"direction", direction(opt_)},
                        {"duration_s", opt_.duration_s},
                        {"interval_s", opt_.interval_s},
                        {"intervals", nlohmann::json::array()},
                        {"total", total}};
    for (const auto& rec : records_) j["intervals"].push_back(nlohmann::json::parse(rec));
    std::fprintf(out_, "%s\n", j.dump(2).c_str());
    std::fflush(out_);
    return;
  }
  std::fprintf(out_, "  - - - - - - - - - - - - - - - - - - - - - - - - -\n");
  BenchSample total = end;  // with the server's final counts
  total.delivered = drained.delivered;
  for (auto& u : total.uplinks)
    if (const UplinkStatus* d = find(drained.uplinks, u.id)) u.delivered_bytes = d->delivered_bytes;
  std::string l = line(first_, total);
  std::fprintf(out_, "%s\n", l.c_str());
  if (opt_.upload)
    std::fprintf(out_, "  upload: %s sent, %s delivered to the server (%.2f %% lost)\n", rate(r.sent).c_str(),
                 rate(delivered).c_str(), lost * 100);
  if (opt_.download) std::fprintf(out_, "  download: %s received\n", rate(r.received).c_str());
  std::fflush(out_);
}

}  // namespace triglav::ctl
