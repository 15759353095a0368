// Config files read and written from the settings table (control/settings.h).
#include "control/config.h"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <toml++/toml.h>

#include "control/settings.h"
#include "io/units.h"

namespace triglav::ctl {
namespace {

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.15g", v);
  return b;
}

std::optional<double> number_of(const toml::node& n) {
  if (auto i = n.as_integer()) return static_cast<double>(i->get());
  if (auto d = n.as_floating_point()) return d->get();
  return std::nullopt;
}

// Reads one value into s; false with `why` completing "expected ...".
bool read_value(const Setting& k, const toml::node& n, Settings& s, std::string& why) {
  switch (k.kind) {
    case Kind::Text: {
      auto v = n.value_exact<std::string>();
      if (k.choices != nullptr) {
        const std::string full = v ? full_choice(k, *v) : std::string();
        for (const auto& c : split_choices(k.choices))
          if (v && full == c) return s.*k.text = full, true;
        return why = std::string("one of ") + k.choices, false;
      }
      if (!v) return why = "a string", false;
      if (k.check != nullptr && !k.check(*v, why)) return false;
      s.*k.text = *v;
      return true;
    }
    case Kind::Texts: {
      const toml::array* a = n.as_array();
      if (a == nullptr) return why = "an array of strings", false;
      std::vector<std::string> out;
      for (const auto& e : *a) {
        auto v = e.value_exact<std::string>();
        if (!v) return why = "an array of strings", false;
        if (k.check != nullptr && !k.check(*v, why)) return false;
        out.push_back(*v);
      }
      s.*k.texts = std::move(out);
      return true;
    }
    case Kind::Bool: {
      auto v = n.value_exact<bool>();
      if (!v) return why = "true or false", false;
      s.*k.boolean = *v;
      return true;
    }
    case Kind::Int: {
      auto v = n.as_integer();
      if (v == nullptr || v->get() < k.lo || v->get() > k.hi)
        return why = "an integer from " + num(k.lo) + " to " + num(k.hi), false;
      s.*k.integer = static_cast<int>(v->get());
      return true;
    }
    case Kind::Number: {
      auto v = number_of(n);
      if (!v || !std::isfinite(*v) || *v < k.lo || *v > k.hi)
        return why = "a number from " + num(k.lo) + " to " + num(k.hi), false;
      s.*k.number = *v;
      return true;
    }
    case Kind::Duration: {
      std::optional<double> secs;
      if (auto str = n.value_exact<std::string>()) {
        std::int64_t ns = 0;
        if (io::parse_duration(*str, ns)) secs = static_cast<double>(ns) / 1e9;
      } else {
        secs = number_of(n);
      }
      if (!secs || !(*secs >= k.lo && *secs <= k.hi))
        return why = "a duration from " + num(k.lo) + "s to " + num(k.hi) + "s, such as \"100ms\", \"30s\" or \"5m\"",
               false;
      s.*k.number = *secs;
      return true;
    }
    case Kind::Numbers: {
      const toml::array* a = n.as_array();
      if (a == nullptr) return why = "an array of positive numbers", false;
      std::vector<double> out;
      for (const auto& e : *a) {
        auto v = number_of(e);
        if (!v || !(*v > 0) || !std::isfinite(*v)) return why = "an array of positive numbers", false;
        out.push_back(*v);
      }
      s.*k.numbers = std::move(out);
      return true;
    }
    case Kind::Custom: {
      std::optional<std::string> v = n.value_exact<std::string>();
      if (auto i = n.as_integer()) v = std::to_string(i->get());
      if (auto b = n.value_exact<bool>()) v = *b ? "true" : "false";
      if (v && k.apply(*v, s)) return true;
      return why = k.expect, false;
    }
  }
  return why = "a valid value", false;
}

bool in_file(const Setting& k, Role role) { return *k.section != '\0' && (k.file & role_bit(role)) != 0; }

bool has_section(const std::string& name, Role role) {
  for (const auto& k : settings())
    if (in_file(k, role) && name == k.section) return true;
  return false;
}

std::string allowed_sections(Role role) {
  std::string out;
  for (const auto& sec : config_sections())
    if ((sec.file & role_bit(role)) != 0 && out.find(std::string("[") + sec.name + "]") == std::string::npos)
      out += std::string(out.empty() ? "" : ", ") + "[" + sec.name + "]";
  return out;
}

std::string allowed_keys(const std::string& section, Role role) {
  std::string out;
  for (const auto& k : settings())
    if (in_file(k, role) && section == k.section) out += std::string(out.empty() ? "" : ", ") + k.key;
  return out;
}

std::string text_of(const toml::node& n) {
  std::ostringstream os;
  n.visit([&os](const auto& v) { os << v; });
  return os.str();
}

// Every mistake, each naming the file and the line of the value at fault. The table
// iterates keys in name order: the problems are sorted by line at the end.
struct Reader {
  std::string src;
  Role role;
  std::vector<ConfigProblem> problems;
  std::map<std::string, std::pair<int, std::string>> given;  // "section.key" -> line, value as TOML

  void problem(const toml::node& n, const std::string& msg) {
    const int line = static_cast<int>(n.source().begin.line);
    problems.push_back({line, "config " + src + " line " + std::to_string(line) + ": " + msg});
  }

  void section(const std::string& name, const toml::table& t, Settings& s) {
    for (const auto& [key_name, v] : t) {
      const std::string key(key_name.str());
      if (v.is_table() && has_section(name + "." + key, role)) continue;  // [multipath.scheduler]
      const Setting* found = nullptr;
      for (const auto& k : settings())
        if (in_file(k, role) && name == k.section && key == k.key) found = &k;
      if (found == nullptr) {
        problem(v, "unknown key '" + key + "' in [" + name + "] (allowed: " + allowed_keys(name, role) + ")");
        continue;
      }
      std::string why;
      if (!read_value(*found, v, s, why)) problem(v, "[" + name + "] " + key + ": expected " + why);
      given[name + "." + key] = {static_cast<int>(v.source().begin.line), text_of(v)};
    }
    for (const auto& [key_name, v] : t)
      if (v.is_table() && has_section(name + "." + std::string(key_name.str()), role))
        section(name + "." + std::string(key_name.str()), *v.as_table(), s);
  }

  // A key of the first README given with the one it stands for: one value, or a mistake.
  void same_settings() {
    for (const auto& k : settings()) {
      if (k.same_as == nullptr || !in_file(k, role)) continue;
      const std::string name = std::string(k.section) + "." + k.key;
      const auto alias = given.find(name), target = given.find(k.same_as);
      if (alias == given.end() || target == given.end() || alias->second.second == target->second.second) continue;
      const std::string other(k.same_as);
      const auto dot = other.rfind('.');
      const int line = alias->second.first;
      problems.push_back({line, "config " + src + " line " + std::to_string(line) + ": [" + k.section + "] " +
                                    k.key + " is another name for [" + other.substr(0, dot) + "] " +
                                    other.substr(dot + 1) + ", given too (line " +
                                    std::to_string(target->second.first) + ") and written otherwise: give one of them"});
    }
  }
};

// Comment lines of at most about 88 columns.
std::string comment(const std::string& text) {
  std::string out, line;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find(' ', i);
    if (j == std::string::npos) j = text.size();
    const std::string word = text.substr(i, j - i);
    if (!line.empty() && line.size() + 1 + word.size() > 86) {
      out += "# " + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    i = j + 1;
  }
  if (!line.empty()) out += "# " + line + "\n";
  return out;
}

std::string quoted(const std::string& v) {
  std::string o = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

std::string duration(double v) {
  std::string o = "\"";
  if (v >= 60 && std::fmod(v, 60) == 0) o.append(num(v / 60)).append("m");
  else if (v < 1) o.append(num(v * 1000)).append("ms");
  else o.append(num(v)).append("s");
  return o.append("\"");
}

// The default value of k as TOML.
std::string shown(const Setting& k, const Settings& d) {
  if (k.show != nullptr) return k.show(d);
  std::string o;
  switch (k.kind) {
    case Kind::Text: return quoted(d.*k.text);
    case Kind::Texts:
      for (const auto& t : d.*k.texts) o += (o.empty() ? "" : ", ") + quoted(t);
      return "[" + o + "]";
    case Kind::Bool: return d.*k.boolean ? "true" : "false";
    case Kind::Int: return std::to_string(d.*k.integer);
    case Kind::Number: return num(d.*k.number);
    case Kind::Duration: return duration(d.*k.number);
    case Kind::Numbers:
      for (double v : d.*k.numbers) o += (o.empty() ? "" : ", ") + num(v);
      return "[" + o + "]";
    case Kind::Custom: break;
  }
  return "\"\"";
}

// The comment of a key: its doc, else its help as a sentence; the choices appended.
std::string doc_of(const Setting& k) {
  std::string text = k.doc != nullptr ? k.doc : k.help;
  if (k.doc == nullptr && !text.empty()) {
    text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
    text += ".";
  }
  if (k.choices != nullptr) text += std::string(text.empty() ? "" : " ") + "One of: " + k.choices + ".";
  if (k.aliases != nullptr) text += std::string(" Short names: ") + k.aliases + ".";
  return text;
}

}  // namespace

std::vector<ConfigProblem> read_config(const std::string& text, const std::string& source, Role role, Settings& s,
                                       ConfigSource* where) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {  // the parser stops at its first mistake
    const int line = static_cast<int>(e.source().begin.line);
    return {{line, "config " + source + " line " + std::to_string(line) + ": " + std::string(e.description())}};
  }
  Reader r{source, role, {}, {}};
  for (const auto& [k, v] : root) {
    const std::string name(k.str());
    if (!v.is_table() || !has_section(name, role)) {
      const char* other = role == Role::Server ? "client" : "server";
      if (name == other)
        r.problem(v, "[" + name + "] belongs in a " + other + " config (this is a " +
                         (role == Role::Server ? "server" : "client") + " config)");
      else
        r.problem(v, "unknown section or key '" + name + "' (allowed: " + allowed_sections(role) + ")");
      continue;
    }
    r.section(name, *v.as_table(), s);
  }
  r.same_settings();
  in_file_order(r.problems);
  if (where != nullptr) {
    where->path = source;
    where->parsed = true;
    for (const auto& [key, at] : r.given) where->lines[key] = at.first;
  }
  return r.problems;
}

namespace {
bool read_file(const std::string& path, std::string& text, std::string& err) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return err = "cannot read config " + path + ": " + std::strerror(errno), false;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) return err = "cannot read config " + path, false;
  return true;
}
}  // namespace

std::vector<ConfigProblem> read_config_file(const std::string& path, Role role, Settings& s, ConfigSource* where) {
  std::string text, err;
  if (!read_file(path, text, err)) return {{0, err}};
  return read_config(text, path, role, s, where);
}

std::string joined(const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const auto& p : problems) out += (out.empty() ? "" : "\n") + p.message;
  return out;
}

void in_file_order(std::vector<ConfigProblem>& problems) {
  std::stable_sort(problems.begin(), problems.end(), [](const ConfigProblem& a, const ConfigProblem& b) {
    return (a.line == 0 ? INT_MAX : a.line) < (b.line == 0 ? INT_MAX : b.line);
  });
}

std::string tunnel_address_text(const Settings& s, const char* default_addr) {
  if (s.ipv4.empty()) return std::string(default_addr) + "/24";
  return s.ipv4.front() == '/' ? default_addr + s.ipv4 : s.ipv4;  // only ipv4_netmask: the default address
}

void parse_config(const std::string& text, const std::string& source, Role role, Settings& s) {
  const auto problems = read_config(text, source, role, s);
  if (!problems.empty()) throw std::runtime_error(joined(problems));
}

void load_config(const std::string& path, Role role, Settings& s) {
  const auto problems = read_config_file(path, role, s);
  if (!problems.empty()) throw std::runtime_error(joined(problems));
}

std::optional<Role> role_of_config(const std::string& path) {
  std::string text, err;
  if (!read_file(path, text, err)) return std::nullopt;
  try {
    const toml::table root = toml::parse(text, path);
    const bool server = root.contains("server"), client = root.contains("client");
    if (server != client) return server ? Role::Server : Role::Client;
  } catch (const toml::parse_error&) {
  }
  return std::nullopt;
}

std::string default_config(Role role) {
  const Settings d;
  const bool server = role == Role::Server;
  std::string o = server ? "# triglav server configuration: `triglav server --config FILE`.\n"
                         : "# triglav client configuration: `triglav tun --config FILE`.\n";
  o += "# Flags given on the command line override these values. Durations take a unit\n"
       "# (\"100ms\", \"30s\", \"5m\"); a bare number is seconds. SIGHUP re-reads the\n"
       "# [multipath.scheduler], [metrics] and [log] sections.\n";
  for (const auto& sec : config_sections()) {
    if ((sec.file & role_bit(role)) == 0) continue;
    o += "\n[" + std::string(sec.name) + "]\n" + comment(sec.doc);
    for (const auto& k : settings()) {
      if (!in_file(k, role) || std::string_view(k.section) != sec.name || k.same_as != nullptr) continue;
      o += comment(doc_of(k));
      o += std::string(k.key) + " = " + shown(k, d) + "\n";
    }
  }
  return o;
}

}  // namespace triglav::ctl
