#include "control/config.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <toml++/toml.h>

#include "dataplane/scheduler.h"
#include "io/endpoint.h"
#include "io/units.h"

namespace triglav::ctl {
namespace {

// One key of a section: how to read it into Settings, and what it accepts (for errors).
struct Key {
  const char* name;
  std::function<bool(const toml::node&, Settings&, std::string& why)> read;
};

struct Section {
  const char* name;
  std::vector<Key> keys;
};

// Errors name the file and the line of the value at fault.
struct Reader {
  std::string src;
  [[noreturn]] void fail(const toml::node& n, const std::string& msg) const {
    throw std::runtime_error("config " + src + " line " + std::to_string(n.source().begin.line) + ": " + msg);
  }
};

// Value readers: each returns false with `why` naming what is allowed.
auto string_key(std::string Settings::*field) {
  return [field](const toml::node& n, Settings& s, std::string& why) {
    auto v = n.value<std::string>();
    if (!v) return why = "a string", false;
    s.*field = *v;
    return true;
  };
}

auto strings_key(std::vector<std::string> Settings::*field, bool (*check)(const std::string&, std::string&) = nullptr) {
  return [field, check](const toml::node& n, Settings& s, std::string& why) {
    const toml::array* a = n.as_array();
    if (a == nullptr) return why = "an array of strings", false;
    std::vector<std::string> out;
    for (const auto& e : *a) {
      auto v = e.value<std::string>();
      if (!v) return why = "an array of strings", false;
      if (check != nullptr && !check(*v, why)) return false;
      out.push_back(*v);
    }
    s.*field = std::move(out);
    return true;
  };
}

auto bool_key(bool Settings::*field) {
  return [field](const toml::node& n, Settings& s, std::string& why) {
    auto v = n.value_exact<bool>();
    if (!v) return why = "true or false", false;
    s.*field = *v;
    return true;
  };
}

auto int_key(int Settings::*field, std::int64_t lo, std::int64_t hi) {
  return [=](const toml::node& n, Settings& s, std::string& why) {
    auto v = n.as_integer();
    if (v == nullptr || v->get() < lo || v->get() > hi)
      return why = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi), false;
    s.*field = static_cast<int>(v->get());
    return true;
  };
}

auto number_key(double Settings::*field, double lo, double hi) {
  return [=](const toml::node& n, Settings& s, std::string& why) {
    std::optional<double> v;
    if (auto i = n.as_integer()) v = static_cast<double>(i->get());
    else if (auto d = n.as_floating_point()) v = d->get();
    if (!v || !std::isfinite(*v) || *v < lo || *v > hi) {
      why = "a number from " + std::to_string(lo) + " to " + std::to_string(hi);
      return false;
    }
    s.*field = *v;
    return true;
  };
}

// A duration: a string with a unit ("100ms", "5m") or a number of seconds.
auto duration_key(double Settings::*field, double lo_s, double hi_s) {
  return [=](const toml::node& n, Settings& s, std::string& why) {
    std::optional<double> secs;
    if (auto str = n.value_exact<std::string>()) {
      std::int64_t ns = 0;
      if (io::parse_duration(*str, ns)) secs = static_cast<double>(ns) / 1e9;
    } else if (auto i = n.as_integer()) {
      secs = static_cast<double>(i->get());
    } else if (auto d = n.as_floating_point()) {
      secs = d->get();
    }
    if (!secs || *secs < lo_s || *secs > hi_s) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "a duration from %gs to %gs, such as \"100ms\", \"30s\" or \"5m\"", lo_s, hi_s);
      why = buf;
      return false;
    }
    s.*field = *secs;
    return true;
  };
}

auto cipher_key() {
  return [](const toml::node& n, Settings& s, std::string& why) {
    auto v = n.value_exact<std::string>();
    if (v && (*v == "auto" || *v == "chacha20-poly1305" || *v == "aes-256-gcm")) return s.cipher = *v, true;
    return why = "one of auto, chacha20-poly1305, aes-256-gcm", false;
  };
}

bool check_endpoint(const std::string& v, std::string& why) {
  std::string err;
  if (io::parse_endpoint(v, err)) return true;
  why = "IP:PORT addresses ('" + v + "': " + err + ")";
  return false;
}

bool check_prefix(const std::string& v, std::string& why) {
  std::string err;
  if (v.find(':') != std::string::npos ? io::parse_ipv6_prefix(v, err).has_value()
                                       : io::parse_ipv4_prefix(v, 32, err).has_value())
    return true;
  why = "prefixes such as \"192.168.0.0/16\" or \"fd12:3456::/48\" ('" + v + "': " + err + ")";
  return false;
}

// "LOW-HIGH", both within 1024-65535 and LOW <= HIGH.
bool parse_port_range(const std::string& v, int& lo, int& hi) {
  unsigned a = 0, b = 0;
  int used = 0;
  if (std::sscanf(v.c_str(), "%5u-%5u%n", &a, &b, &used) != 2 || static_cast<std::size_t>(used) != v.size())
    return false;
  if (a < 1024 || b > 65535 || a > b) return false;
  lo = static_cast<int>(a);
  hi = static_cast<int>(b);
  return true;
}

bool check_interface(const std::string& v, std::string& why) {
  if (!v.empty() && v.size() < 16 && v.find('/') == std::string::npos) return true;
  why = "interface names of 1-15 characters";
  return false;
}

std::vector<Section> sections(Role role) {
  std::vector<Section> out;
  out.push_back({"log", {{"level", [](const toml::node& n, Settings& s, std::string& why) {
                            auto v = n.value<std::string>();
                            static const char* levels[] = {"trace", "debug", "info", "warn", "error", "off"};
                            for (const char* l : levels)
                              if (v && *v == l) return s.log_level = *v, true;
                            return why = "one of trace, debug, info, warn, error, off", false;
                          }}}});
  out.push_back({"control", {{"socket", string_key(&Settings::control_socket)}}});
  out.push_back({"metrics",
                 {{"enabled", bool_key(&Settings::metrics)},
                  {"listen", [](const toml::node& n, Settings& s, std::string& why) {
                     auto v = n.value<std::string>();
                     if (!v) return why = "a string IP:PORT", false;
                     if (!check_endpoint(*v, why)) return false;
                     s.metrics_listen = *v;
                     return true;
                   }}}});
  if (role == Role::Server) {
    out.push_back({"server",
                   {{"listen", strings_key(&Settings::listen, check_endpoint)},
                    {"key_file", string_key(&Settings::key_file)},
                    {"addresses", strings_key(&Settings::addresses, check_endpoint)},
                    {"max_connections", int_key(&Settings::max_connections, 1, 1'000'000)},
                    {"idle_timeout", duration_key(&Settings::idle_timeout_s, 1, 86'400)},
                    {"nat_outbound", bool_key(&Settings::nat_outbound)},
                    {"authorized_clients", string_key(&Settings::authorized_clients)},
                    {"user", string_key(&Settings::user)},
                    {"allow_benchmark", bool_key(&Settings::allow_benchmark)},
                    {"ipv6_prefix", string_key(&Settings::ipv6_prefix)},
                    {"tcp_fallback", bool_key(&Settings::tcp_fallback)},
                    {"client_routes", strings_key(&Settings::client_routes, [](const std::string& v, std::string& why) {
                       const auto eq = v.find('=');
                       std::string err;
                       if (eq != std::string::npos && eq > 0 && io::parse_ipv4_prefix(v.substr(eq + 1), 32, err)) return true;
                       why = "\"NAME=PREFIX\" strings, such as \"office=192.168.50.0/24\" ('" + v + "')";
                       return false;
                     })}}});
  } else {
    out.push_back({"client",
                   {{"auth_key", string_key(&Settings::authkey)},
                    {"endpoint", [](const toml::node& n, Settings& s, std::string& why) {
                       auto v = n.value<std::string>();
                       if (!v) return why = "a string IP:PORT", false;
                       if (!v->empty() && !check_endpoint(*v, why)) return false;
                       s.endpoint = *v;
                       return true;
                     }},
                    {"uplinks", strings_key(&Settings::interfaces, check_interface)},
                    {"auto_discover", bool_key(&Settings::auto_discover)},
                    {"handshake_timeout", duration_key(&Settings::handshake_timeout_s, 0.1, 3600)},
                    {"client_key_file", string_key(&Settings::client_key_file)},
                    {"tcp_fallback", bool_key(&Settings::tcp_fallback)},
                    {"tcp_fallback_after", duration_key(&Settings::tcp_fallback_after_s, 0.1, 600)},
                    {"user", string_key(&Settings::user)}}});
  }
  if (role == Role::Client)
    out.push_back({"transport",
                   {{"rekey_after", duration_key(&Settings::rekey_after_s, 1, 3600)},
                    {"reject_after", duration_key(&Settings::reject_after_s, 2, 7200)},
                    {"socket_buffer", int_key(&Settings::socket_buffer, 65536, 1 << 30)},
                    {"workers", int_key(&Settings::workers, 0, static_cast<int>(dp::kMaxWorkers))},
                    {"cipher", cipher_key()}}});
  else
    out.push_back({"transport", {{"reject_after", duration_key(&Settings::reject_after_s, 2, 7200)},
                                 {"max_clock_skew", duration_key(&Settings::max_clock_skew_s, 1, 86400)},
                                 {"socket_buffer", int_key(&Settings::socket_buffer, 65536, 1 << 30)},
                                 {"workers", int_key(&Settings::workers, 0, static_cast<int>(dp::kMaxWorkers))},
                                 {"cipher", cipher_key()}}});
  out.push_back({"tun",
                 {{"name", [](const toml::node& n, Settings& s, std::string& why) {
                     auto v = n.value<std::string>();
                     if (!v || !check_interface(*v, why)) return why = "an interface name of 1-15 characters", false;
                     s.tun_name = *v;
                     return true;
                   }},
                  {"ipv4_addr", [](const toml::node& n, Settings& s, std::string& why) {
                     auto v = n.value<std::string>();
                     std::string err;
                     if (v && v->empty()) {  // client: the server assigns one
                       const auto slash = s.ipv4.find('/');
                       s.ipv4 = slash == std::string::npos ? "" : s.ipv4.substr(slash);
                       return true;
                     }
                     if (!v || v->find('/') != std::string::npos || !io::parse_ipv4_prefix(*v, 32, err))
                       return why = "an IPv4 address such as \"10.0.85.2\" (the prefix length is ipv4_netmask)", false;
                     const auto slash = s.ipv4.find('/');
                     s.ipv4 = *v + (slash == std::string::npos ? "" : s.ipv4.substr(slash));
                     return true;
                   }},
                  {"ipv4_netmask", [](const toml::node& n, Settings& s, std::string& why) {
                     int len = -1;
                     if (auto i = n.as_integer()) {
                       if (i->get() >= 1 && i->get() <= 32) len = static_cast<int>(i->get());
                     } else if (auto str = n.value<std::string>()) {
                       std::string err;  // a dotted mask: contiguous ones only
                       if (auto p = io::parse_ipv4_prefix(*str, 32, err)) {
                         const std::uint32_t m = __builtin_bswap32(p->addr_be);
                         const int ones = __builtin_popcount(m);
                         if (ones > 0 && m == (~std::uint32_t{0} << (32 - ones))) len = ones;
                       }
                     }
                     if (len < 0) return why = "a prefix length 1-32 or a mask such as \"255.255.255.0\"", false;
                     const auto slash = s.ipv4.find('/');
                     s.ipv4 = (slash == std::string::npos ? s.ipv4 : s.ipv4.substr(0, slash)) + "/" + std::to_string(len);
                     return true;
                   }},
                  {"mtu", int_key(&Settings::mtu, dp::kMinMtu, dp::kMaxMtu)},
                  {"offload", bool_key(&Settings::tun_offload)},
                  {"routes", strings_key(&Settings::routes, check_prefix)}}});
  if (role == Role::Client)
    out.push_back({"routing",
                   {{"full_tunnel", bool_key(&Settings::full_tunnel)},
                    {"exclude_routes", strings_key(&Settings::exclude, check_prefix)},
                    {"dns_servers", strings_key(&Settings::dns, [](const std::string& v, std::string& why) {
                       std::string err;
                       if (v.find('/') == std::string::npos && io::parse_ipv4_prefix(v, 32, err)) return true;
                       why = "IPv4 addresses such as \"10.0.85.1\"";
                       return false;
                     })},
                    {"gateway", bool_key(&Settings::gateway)},
                    {"gateway_nat", bool_key(&Settings::gateway_nat)}}});
  out.push_back({"nat",
                 {{"tcp_timeout", duration_key(&Settings::nat_tcp_timeout_s, 10, 432'000)},
                  {"udp_timeout", duration_key(&Settings::nat_udp_timeout_s, 1, 86'400)},
                  {"port_range", [](const toml::node& n, Settings& s, std::string& why) {
                     auto v = n.value_exact<std::string>();
                     int lo = 0, hi = 0;
                     if (v && parse_port_range(*v, lo, hi)) {
                       s.nat_port_min = lo;
                       s.nat_port_max = hi;
                       return true;
                     }
                     why = "a port range \"LOW-HIGH\" within 1024-65535, such as \"32768-61000\"";
                     return false;
                   }}}});
  std::vector<Key> mp = {{"probe_interval", duration_key(&Settings::probe_interval_s, 0.05, 60)},
                         {"busy_probe_interval", duration_key(&Settings::busy_probe_interval_s, 0.02, 60)}};
  if (role == Role::Client) {
    mp.push_back({"max_uplinks", int_key(&Settings::max_uplinks, 1, static_cast<std::int64_t>(dp::kMaxUplinks))});
    mp.push_back({"retry_delay", duration_key(&Settings::retry_delay_s, 0.05, 600)});
    mp.push_back({"max_retries", int_key(&Settings::max_retries, 0, 1'000'000)});
  }
  out.push_back({"multipath", std::move(mp)});
  std::vector<Key> sched = {
      {"strategy", [](const toml::node& n, Settings& s, std::string& why) {
         auto v = n.value<std::string>();
         if (!v || !dp::parse_strategy(*v)) {
           why = "one of adaptive, lowest_latency, lowest_loss, weighted_round_robin, bandwidth_proportional, "
                 "redundant, primary_backup, ecmp_aware";
           return false;
         }
         s.strategy = *v;
         return true;
       }},
      {"rtt_weight", number_key(&Settings::rtt_weight, 0, 1)},
      {"loss_weight", number_key(&Settings::loss_weight, 0, 1)},
      {"bandwidth_weight", number_key(&Settings::bandwidth_weight, 0, 1)},
      {"nat_weight", number_key(&Settings::nat_weight, 0, 1)},
      {"primary", int_key(&Settings::primary, 0, static_cast<std::int64_t>(dp::kMaxUplinks) - 1)},
      {"hysteresis", duration_key(&Settings::hysteresis_s, 0, 3600)},
      {"prefer_healthy", bool_key(&Settings::prefer_healthy)}};
  if (role == Role::Client)
    sched.push_back({"weights", [](const toml::node& n, Settings& s, std::string& why) {
                       const toml::array* a = n.as_array();
                       std::vector<double> w;
                       if (a != nullptr)
                         for (const auto& e : *a) {
                           std::optional<double> v;
                           if (auto i = e.as_integer()) v = static_cast<double>(i->get());
                           else if (auto d = e.as_floating_point()) v = d->get();
                           if (!v || !(*v > 0) || !std::isfinite(*v)) return why = "an array of positive numbers", false;
                           w.push_back(*v);
                         }
                       if (a == nullptr) return why = "an array of positive numbers", false;
                       s.weights = std::move(w);
                       return true;
                     }});
  out.push_back({"multipath.scheduler", std::move(sched)});
  return out;
}

std::string names(const std::vector<Section>& secs) {
  std::string out;
  for (const auto& s : secs) out += std::string(out.empty() ? "" : ", ") + "[" + s.name + "]";
  return out;
}

std::string names(const Section& sec) {
  std::string out;
  for (const auto& k : sec.keys) out += std::string(out.empty() ? "" : ", ") + k.name;
  return out;
}

void read_section(const Reader& r, const Section& sec, const toml::table& t, Settings& s,
                  const std::vector<Section>& all) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    const std::string full = std::string(sec.name) + "." + key;
    if (v.is_table()) {
      bool nested = false;  // [multipath.scheduler] inside [multipath]
      for (const auto& other : all) nested |= full == other.name;
      if (nested) continue;
    }
    const Key* found = nullptr;
    for (const auto& cand : sec.keys)
      if (key == cand.name) found = &cand;
    if (found == nullptr)
      r.fail(v, "unknown key '" + key + "' in [" + sec.name + "] (allowed: " + names(sec) + ")");
    std::string why;
    if (!found->read(v, s, why)) {
      std::string msg = "[";
      msg.append(sec.name).append("] ").append(key).append(": expected ").append(why);
      r.fail(v, msg);
    }
  }
}

}  // namespace

void parse_config(const std::string& text, const std::string& source, Role role, Settings& s) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error("config " + source + " line " + std::to_string(e.source().begin.line) + ": " +
                             std::string(e.description()));
  }
  const Reader r{source};
  const auto secs = sections(role);
  for (const auto& [k, v] : root) {
    const std::string name(k.str());
    const Section* sec = nullptr;
    for (const auto& cand : secs)
      if (name == cand.name) sec = &cand;
    if (sec == nullptr || !v.is_table()) {
      const char* other = role == Role::Server ? "client" : "server";
      if (name == other)
        r.fail(v, "[" + name + "] belongs in a " + other + " config (this is a " +
                      (role == Role::Server ? "server" : "client") + " config)");
      r.fail(v, "unknown section or key '" + name + "' (allowed: " + names(secs) + ")");
    }
    read_section(r, *sec, *v.as_table(), s, secs);
    if (name == "multipath")
      if (const auto* nested = v.as_table()->get_as<toml::table>("scheduler"))
        read_section(r, secs.back(), *nested, s, secs);
  }
}

void load_config(const std::string& path, Role role, Settings& s) {
  std::string text;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) throw std::runtime_error("cannot read config " + path + ": " + std::strerror(errno));
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
    const bool bad = std::ferror(f) != 0;
    std::fclose(f);
    if (bad) throw std::runtime_error("cannot read config " + path);
  }
  parse_config(text, path, role, s);
}

std::string default_config(Role role) {
  const Settings d;
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return std::string(b);
  };
  auto secs = [&](double v) {
    if (v >= 60 && std::fmod(v, 60) == 0) return "\"" + num(v / 60) + "m\"";
    if (v < 1) return "\"" + num(v * 1000) + "ms\"";
    return "\"" + num(v) + "s\"";
  };
  std::string o;
  const bool server = role == Role::Server;
  o += server ? "# triglav server configuration: `triglav server --config FILE`.\n"
              : "# triglav client configuration: `triglav tun --config FILE`.\n";
  o += "# Flags given on the command line override these values. Durations take a unit\n"
       "# (\"100ms\", \"30s\", \"5m\"); a bare number is seconds. SIGHUP re-reads the\n"
       "# [multipath.scheduler], [metrics] and [log] sections.\n\n";
  o += "[log]\n# trace, debug, info, warn, error or off.\nlevel = \"" + d.log_level + "\"\n\n";
  o += "[control]\n# Unix socket for `triglav status` (root only); empty: /run/triglav/" +
       std::string(server ? "server" : "client") + "-TUN.sock; \"none\": no socket.\nsocket = \"\"\n\n";
  o += "[metrics]\n# Prometheus text format at http://LISTEN/metrics.\nenabled = " +
       std::string(d.metrics ? "true" : "false") + "\nlisten = \"" + d.metrics_listen + "\"\n\n";
  if (server) {
    o += "[server]\n";
    o += "# UDP addresses to listen on (IPv4 or [IPv6]:port).\nlisten = [\"" + d.listen[0] + "\"]\n";
    o += "# Key file from `triglav keygen`; required.\nkey_file = \"/etc/triglav/server.key\"\n";
    o += "# Addresses clients are told to use (in the AuthKey); empty: the key file's,\n"
         "# else the listen addresses (every local address for a wildcard).\naddresses = []\n";
    o += "# Clients served at once; handshakes of further clients are refused.\nmax_connections = " +
         std::to_string(d.max_connections) + "\n";
    o += "# A client uplink that sends nothing for this long is removed.\nidle_timeout = " +
         secs(d.idle_timeout_s) + "\n";
    o += "# Forward the clients' traffic and masquerade it on the other interfaces, so they\n"
         "# reach the server's networks and the internet, over IPv4 and IPv6 (nftables;\n"
         "# undone on exit).\nnat_outbound = false\n";
    o += "# Client keys allowed to connect: a file of \"tgc1_... name\" lines, or a directory\n"
         "# of such files (one per client; delete a file to revoke its key within seconds).\n"
         "# Empty: any client holding the AuthKey may connect.\nauthorized_clients = \"\"\n";
    o += "# Networks behind a client (a gateway that does not NAT its LAN): \"NAME=PREFIX\",\n"
         "# NAME a key of authorized_clients. Routed to that client, which may send from them.\n"
         "client_routes = []\n";
    o += "# After set-up, run as this user with only CAP_NET_ADMIN and CAP_NET_RAW; empty: stay\n"
         "# root. authorized_clients must be readable by it.\nuser = \"\"\n";
    o += "# Accept `triglav benchmark` sessions: synthetic traffic, counted and dropped here,\n"
         "# never on the TUN (and sent back for --reverse/--bidir).\nallow_benchmark = false\n";
    o += "# The tunnel's IPv6 /64: \"auto\" (a unique local prefix derived from the key),\n"
         "# \"none\" (IPv4 only) or e.g. \"fd12:3456:789a:1::/64\". Clients get prefix::A.B.C.D\n"
         "# for their IPv4 tunnel address A.B.C.D; the server is prefix::1.\nipv6_prefix = \"auto\"\n";
    o += "# Also accept clients over TCP, on each listen address's port, for networks that\n"
         "# block UDP (the clients' tcp_fallback).\ntcp_fallback = false\n\n";
  } else {
    o += "[client]\n";
    o += "# The server's AuthKey (tg1_...), as printed by `triglav keygen` or the server.\nauth_key = \"\"\n";
    o += "# Server IP:PORT, instead of the AuthKey's addresses; empty: the AuthKey's.\nendpoint = \"\"\n";
    o += "# Uplink interfaces, e.g. [\"eth1\", \"wwan0\"]; empty: one uplink chosen by the\n"
         "# routing table (or every usable interface with auto_discover).\nuplinks = []\n";
    o += "# Use every interface that is up with an IPv4 address, and follow them.\nauto_discover = " +
         std::string(d.auto_discover ? "true" : "false") + "\n";
    o += "# Give up when the first handshake has not completed after this long.\nhandshake_timeout = " +
         secs(d.handshake_timeout_s) + "\n";
    o += "# This client's key (`triglav keygen --client`), for servers with authorized_clients.\n"
         "client_key_file = \"\"\n";
    o += "# An uplink whose UDP handshakes go unanswered for tcp_fallback_after tries TCP to\n"
         "# the server's port instead (the server needs tcp_fallback too).\ntcp_fallback = false\n"
         "tcp_fallback_after = " + secs(d.tcp_fallback_after_s) + "\n";
    o += "# After set-up, run as this user with only CAP_NET_ADMIN and CAP_NET_RAW; empty: stay\n"
         "# root.\nuser = \"\"\n\n";
  }
  o += "[transport]\n";
  if (!server)
    o += "# Every uplink handshakes again this often; the old keys keep decrypting a few\n"
         "# seconds longer, so nothing in flight is lost.\nrekey_after = " + secs(d.rekey_after_s) + "\n";
  o += server ? "# A session not rekeyed for this long is dropped (clients rekey every 2 minutes).\n"
              : "# A session that could not rekey for this long is dropped and handshaken anew.\n";
  o += "reject_after = " + secs(d.reject_after_s) + "\n";
  if (server)
    o += "# A client's initiation whose timestamp is further than this from the server's clock\n"
         "# is refused: a captured one is useless once it is this old (keep clocks in sync).\n"
         "max_clock_skew = " + secs(d.max_clock_skew_s) + "\n";
  o += "# Receive and send buffer of each UDP socket, in bytes (bursts wait here).\nsocket_buffer = " +
       std::to_string(d.socket_buffer) + "\n";
  o += "# Dataplane worker threads, each with its own TUN queue and sockets, pinned to a CPU;\n"
       "# 0: one per CPU this process may use.\nworkers = " + std::to_string(d.workers) + "\n";
  o += "# Transport cipher this end takes: auto (AES-256-GCM when the CPU has AES-NI and it\n"
       "# is faster here, else ChaCha20-Poly1305), \"chacha20-poly1305\" or \"aes-256-gcm\".\n"
       "# A session uses AES-256-GCM when the client offers it and the server agrees.\ncipher = \"" +
       d.cipher + "\"\n\n";
  o += "[tun]\nname = \"" + d.tun_name + "\"\n";
  o += server ? "# The tunnel address and its prefix length (or a mask such as \"255.255.255.0\"); clients\n"
                "# that ask get the other addresses of the prefix.\nipv4_addr = \"10.0.85.1\"\n"
              : "# The tunnel address and its prefix length; empty: the server assigns one.\nipv4_addr = \"\"\n";
  o += "ipv4_netmask = 24\nmtu = " + std::to_string(d.mtu) + "\n";
  o += "# Let the kernel hand over TCP in super-packets of up to 64 KB, segmented here\n"
       "# (virtio_net_hdr offloads): far fewer TUN reads. false: one packet per read.\noffload = " +
       std::string(d.tun_offload ? "true" : "false") + "\n";
  o += server ? "# Prefixes routed into the tunnel (networks of the clients).\nroutes = []\n\n"
              : "# Prefixes routed through the tunnel (networks behind the server).\nroutes = []\n\n";
  if (!server) {
    o += "[routing]\n# Send all traffic through the tunnel (policy routing; the main table is left\n"
         "# alone), except the uplinks' own packets and exclude_routes.\nfull_tunnel = false\n";
    o += "# Prefixes that bypass the tunnel in full_tunnel mode, e.g. the local LAN.\nexclude_routes = []\n";
    o += "# DNS servers (1-3) to use through the tunnel while it runs; /etc/resolv.conf is\n"
         "# restored on exit. Empty: the resolver is left alone.\ndns_servers = []\n";
    o += "# Gateway: forward a LAN's traffic into the tunnel, masqueraded to the tunnel\n"
         "# address (nftables; IP forwarding on while running). With full_tunnel, put the\n"
         "# LAN in exclude_routes so that its answers stay on the LAN.\ngateway = false\n"
         "# false: forward the LAN's packets unchanged, for a server that routes the LAN's\n"
         "# prefix to this client (its client_routes names this client's key).\ngateway_nat = true\n\n";
  }
  o += server ? "[nat]\n# nat_outbound's masquerade: how long idle mappings live, and their source ports.\n"
              : "[nat]\n# gateway's masquerade: how long idle mappings live, and their source ports.\n";
  o += "tcp_timeout = " + secs(d.nat_tcp_timeout_s) + "\nudp_timeout = " + secs(d.nat_udp_timeout_s) +
       "\nport_range = \"" + std::to_string(d.nat_port_min) + "-" + std::to_string(d.nat_port_max) + "\"\n\n";
  o += "[multipath]\n";
  if (!server) {
    o += "# Uplinks at most (auto_discover stops adding beyond it).\nmax_uplinks = " +
         std::to_string(d.max_uplinks) + "\n";
    o += "# Wait between handshake attempts of an uplink.\nretry_delay = " + secs(d.retry_delay_s) + "\n";
    o += "# An uplink whose last max_retries handshakes went unanswered waits twice as long\n"
         "# before each next one, up to 30 s, until it gets an answer or its interface comes\n"
         "# back up. 0: keep trying every retry_delay.\nmax_retries = " + std::to_string(d.max_retries) + "\n";
  }
  o += "# Probe an idle uplink this often (every 50 ms while one fails); probes are the\n"
       "# keepalives.\nprobe_interval = " + secs(d.probe_interval_s) + "\n";
  o += "# Probe an uplink that carries data this often, to notice a dying path quickly.\n"
       "busy_probe_interval = " + secs(d.busy_probe_interval_s) + "\n\n";
  o += "[multipath.scheduler]\n";
  o += "# adaptive, lowest_latency, lowest_loss, weighted_round_robin,\n"
       "# bandwidth_proportional, redundant, primary_backup or ecmp_aware.\n";
  o += server ? "# On the server it spreads return traffic over each client's uplinks.\n" : "";
  o += "strategy = \"" + d.strategy + "\"\n";
  if (!server) o += "# weighted_round_robin: one positive weight per uplink, in uplinks order.\nweights = []\n";
  o += "# adaptive: how much RTT, loss, bandwidth and being behind NAT count.\n";
  o += "rtt_weight = " + num(d.rtt_weight) + "\nloss_weight = " + num(d.loss_weight) +
       "\nbandwidth_weight = " + num(d.bandwidth_weight) + "\nnat_weight = " + num(d.nat_weight) + "\n";
  o += "# primary_backup: the primary uplink (its index), and how long it must be\n"
       "# Healthy again before traffic returns to it.\nprimary = " + std::to_string(d.primary) +
       "\nhysteresis = " + secs(d.hysteresis_s) + "\n";
  o += "# Flows leave a Degraded uplink (three probes lost) while a Healthy one is left,\n"
       "# rather than only once it is Unhealthy (six): faster failover (docs/LINKEM.md).\n"
       "# Redundant and primary_backup keep using Degraded uplinks either way.\nprefer_healthy = " +
       std::string(d.prefer_healthy ? "true" : "false") + "\n";
  return o;
}

}  // namespace triglav::ctl
