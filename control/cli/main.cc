// The triglav command line: keygen, config, server, tun, version.
#if TRIGLAV_MIMALLOC
#include <mimalloc-new-delete.h>
#endif
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <cstdio>
#include <exception>
#include <string>

#include "control/client.h"
#include "control/cli/completions.h"
#include "control/config.h"
#include "control/host/daemon.h"
#include "control/cli/diagnose.h"
#include "control/cli/status_cli.h"
#include "control/authorized_clients.h"
#include "control/key_file.h"
#include "control/runtime.h"
#include "control/server.h"
#include "crypto/aead.h"
#include "crypto/authkey.h"
#include "crypto/client_key.h"
#include "dataplane/counters.h"
#include "dataplane/scheduler.h"
#include "dataplane/wire.h"
#include "triglav_version.h"

namespace {

using namespace triglav;

// Everything the command line sets: the settings a config file can carry too (the file
// is read first, the flags then override it), and what only the command line has.
struct Args : ctl::Settings {
  int verbose = 0;
  std::string config;     // --config FILE
  std::string output;     // keygen, config
  bool generate_key = false;
  bool server_config = false, client_config = false;  // triglav config --server|--client
  ctl::StatusQuery query;  // status, uplink
  ctl::DiagnoseOptions diag;
  std::string shell;  // completions
  bool daemon = false;
  std::string pid_file;
  std::string aead = "auto";  // auto, libsodium, openssl
  bool client_key = false;    // keygen --client
  bool list_counters = false; // counters --list
  std::string key_name;       // keygen --client --name
  ctl::BenchOptions bench;    // benchmark
  bool bench_reverse = false, bench_bidir = false;
};

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// The bulk AEAD implementation (the faster one measured here, unless --aead says), and
// whether this end takes AES-256-GCM for transport (--cipher; auto: when the CPU has it
// and it beats ChaCha20-Poly1305 here). Returns the latter.
bool select_aead(const Args& a) {
  double chacha_ns = 0;
  if (a.aead == "libsodium" || a.aead == "openssl") {
    crypto::set_aead_backend(a.aead == "openssl" ? crypto::AeadBackend::OpenSsl : crypto::AeadBackend::Sodium);
    spdlog::debug("AEAD: {} (chosen with --aead)", a.aead);
  } else {
    double sodium_ns = 0, openssl_ns = 0;
    const crypto::AeadBackend b = crypto::fastest_aead_backend(&sodium_ns, &openssl_ns);
    crypto::set_aead_backend(b);
    chacha_ns = std::min(sodium_ns, openssl_ns);
    // Debug level: a start-up error stays the only line; `triglav status` shows the choice.
    spdlog::debug("AEAD: {}, the faster here (ChaCha20-Poly1305 per 1420-byte packet: libsodium {:.0f} ns, "
                  "openssl {:.0f} ns)", crypto::aead_backend_name(b), sodium_ns, openssl_ns);
  }
  if (a.cipher == "chacha20-poly1305") return false;
  if (!crypto::aes256gcm_available()) {
    if (a.cipher == "aes-256-gcm") fail("--cipher aes-256-gcm: this CPU has no AES-NI (use auto or chacha20-poly1305)");
    return false;
  }
  if (a.cipher == "aes-256-gcm") return true;
  if (chacha_ns == 0) {  // --aead chose the implementation: time that one
    double sodium_ns = 0, openssl_ns = 0;
    (void)crypto::fastest_aead_backend(&sodium_ns, &openssl_ns);
    chacha_ns = crypto::aead_backend() == crypto::AeadBackend::OpenSsl ? openssl_ns : sodium_ns;
  }
  const double aes_ns = crypto::aes256gcm_ns();
  const bool take = aes_ns < chacha_ns;
  spdlog::debug("AES-256-GCM: {:.0f} ns per 1420-byte packet; {} for transport", aes_ns,
                take ? "offered/accepted" : "not used (ChaCha20-Poly1305 is faster here)");
  return take;
}

io::Endpoint endpoint_or_fail(const std::string& text, const char* what) {
  std::string err;
  auto e = io::parse_endpoint(text, err);
  if (!e) fail(std::string(what) + ": " + err);
  return *e;
}

io::Ipv4Prefix prefix_or_fail(const std::string& text, int default_len, const char* what) {
  std::string err;
  auto p = io::parse_ipv4_prefix(text, default_len, err);
  if (!p) fail(std::string(what) + ": " + err);
  return *p;
}

io::Ipv6Prefix prefix6_or_fail(const std::string& text, const char* what) {
  std::string err;
  auto p = io::parse_ipv6_prefix(text, err);
  if (!p) fail(std::string(what) + ": " + err);
  return *p;
}

dp::SchedulerConfig scheduler_or_fail(const ctl::Settings& a) {
  dp::SchedulerConfig c;
  auto s = dp::parse_strategy(a.strategy);
  if (!s)
    fail("--strategy: '" + a.strategy + "' is not one of adaptive, lowest_latency, lowest_loss, "
         "weighted_round_robin, bandwidth_proportional, redundant, primary_backup, ecmp_aware");
  c.strategy = *s;
  c.weights = {a.rtt_weight, a.loss_weight, a.bandwidth_weight, a.nat_weight};
  if (c.weights.rtt + c.weights.loss + c.weights.bandwidth + c.weights.nat <= 0)
    fail("[multipath.scheduler]: the adaptive weights must not all be 0");
  c.primary = static_cast<std::uint8_t>(a.primary);
  c.hysteresis_ns = static_cast<std::int64_t>(a.hysteresis_s * 1e9);
  c.prefer_healthy = a.prefer_healthy;
  return c;
}

// The tunnel address: --ipv4 / ipv4_addr and ipv4_netmask, else the role's default.
io::Ipv4Prefix tunnel_address(const ctl::Settings& a, const char* default_addr) {
  std::string text = a.ipv4;
  if (text.empty()) text = std::string(default_addr) + "/24";
  else if (text.front() == '/') text = default_addr + text;  // only ipv4_netmask in the file
  return prefix_or_fail(text, 24, "--ipv4");
}

spdlog::level::level_enum log_level_or_fail(const Args& a) {
  auto level = spdlog::level::from_str(a.log_level);
  if (a.log_level != "off" && level == spdlog::level::off)
    fail("--log-level: '" + a.log_level + "' is not one of trace, debug, info, warn, error, off");
  if (a.verbose == 1 && level > spdlog::level::debug) level = spdlog::level::debug;
  if (a.verbose >= 2) level = spdlog::level::trace;
  return level;
}

void setup_logging(const Args& a) {
  auto logger = spdlog::stderr_color_st("triglav");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(log_level_or_fail(a));
}

// keygen --client: a client key file, and how to authorise it on the server.
int cmd_keygen_client(const Args& a) {
  if (a.output.empty()) fail("keygen --client needs --output FILE for the client key");
  const crypto::ClientKey k = crypto::ClientKey::generate();
  ctl::save_client_key(a.output, k, a.key_name);
  std::printf("client key %s written to %s (mode 0600).\n"
              "Client: triglav tun AUTHKEY --client-key %s\n"
              "Server: append the file's line to its authorized_clients file, or copy the file into\n"
              "its authorized_clients directory (keep it mode 0600).\n",
              crypto::client_key_label(k.id).c_str(), a.output.c_str(), a.output.c_str());
  return 0;
}

int cmd_keygen(const Args& a) {
  if (a.client_key) return cmd_keygen_client(a);
  if (a.output.empty()) fail("keygen needs --output FILE for the private key");
  ctl::ServerKeyFile kf;
  kf.key = crypto::KeyPair::generate();
  crypto::AuthKey ak;
  ak.server_key = kf.key.pub;
  for (const auto& text : a.addresses) {
    const io::Endpoint e = endpoint_or_fail(text, "--address");
    if (e.is_unspecified()) fail("--address " + text + ": clients cannot reach an unspecified address");
    kf.addresses.push_back(e.to_string());
  }
  ctl::save_key_file(a.output, kf);
  // Round trip through the file format so the printed key is what `server --key` uses.
  ctl::ServerKeyFile back = ctl::load_key_file(a.output);
  for (const auto& text : back.addresses) {
    std::string err;
    auto e = io::parse_endpoint(text, err);
    crypto::AuthKeyAddress addr;
    addr.port = e->port();
    addr.v6 = e->family() == AF_INET6;
    if (addr.v6)
      std::memcpy(addr.ip.data(), &reinterpret_cast<const sockaddr_in6*>(&e->addr)->sin6_addr, 16);
    else
      std::memcpy(addr.ip.data(), &reinterpret_cast<const sockaddr_in*>(&e->addr)->sin_addr, 4);
    ak.addresses.push_back(addr);
  }
  std::printf("%s\n", crypto::encode_authkey(ak).c_str());
  return 0;
}

void check_weights(const ctl::Settings& a);

// The control socket (unless "none") and, when enabled, the metrics listener.
ctl::StatusServerConfig status_config(const ctl::Settings& a, const char* role) {
  ctl::StatusServerConfig c;
  if (a.control_socket != "none")
    c.socket_path = a.control_socket.empty() ? ctl::default_socket_path(role, a.tun_name) : a.control_socket;
  c.socket_required = !a.control_socket.empty();
  c.metrics = a.metrics;
  if (c.metrics) c.metrics_listen = endpoint_or_fail(a.metrics_listen, "--metrics-listen");
  return c;
}

ctl::ProbeConfig probe_config(const ctl::Settings& a) {
  ctl::ProbeConfig p;
  p.interval_ns = static_cast<std::int64_t>(a.probe_interval_s * 1e9);
  p.busy_interval_ns = static_cast<std::int64_t>(a.busy_probe_interval_s * 1e9);
  return p;
}

// --daemon / --pid-file around a server or client run: the parent reports the child's
// start (or its error) and exits; the pid file lives as long as the process.
template <typename Options, typename Run>
int run_maybe_daemon(const Args& a, Options& o, Run run) {
  const std::string pid_path = a.pid_file.empty() ? std::string() : std::filesystem::absolute(a.pid_file).string();
  std::optional<ctl::Daemon> d;
  if (a.daemon) d.emplace(ctl::Daemon::start());  // only the child returns
  try {
    std::optional<ctl::PidFile> pid;
    if (!pid_path.empty()) pid.emplace(pid_path);
    o.pid_file = pid_path;
    o.on_ready = [&d](const std::string& m) {
      if (d) d->ready(m);
    };
    return run(o);
  } catch (const std::exception& e) {
    if (d) d->failed(e.what());
    throw;
  }
}

ctl::NatSettings nat_settings(const ctl::Settings& a) {
  ctl::NatSettings n;
  n.tcp_timeout_s = static_cast<int>(a.nat_tcp_timeout_s);
  n.udp_timeout_s = static_cast<int>(a.nat_udp_timeout_s);
  n.port_min = a.nat_port_min;
  n.port_max = a.nat_port_max;
  return n;
}

int cmd_server(const Args& a, ctl::ReloadFn reload) {
  ctl::ServerOptions o;
  o.aes256gcm = select_aead(a);
  o.key_file = a.key_file;
  o.generate_key = a.generate_key;
  for (const auto& t : a.listen) o.listen.push_back(endpoint_or_fail(t, "--listen"));
  for (const auto& t : a.addresses) o.advertise.push_back(endpoint_or_fail(t, "--address"));
  o.tun.name = a.tun_name;
  o.tun.address = tunnel_address(a, "10.0.85.1");
  o.tun.mtu = a.mtu;
  o.tun.offload = a.tun_offload;
  o.tun.workers = static_cast<unsigned>(a.workers);
  o.user = a.user;
  o.allow_benchmark = a.allow_benchmark;
  o.ipv6_prefix = a.ipv6_prefix;
  o.tcp_fallback = a.tcp_fallback;
  for (const auto& r : a.routes) {
    if (r.find(':') != std::string::npos)
      fail("--route " + r + ": the server routes IPv6 to its clients by their /64 addresses; IPv6 prefixes are "
           "for clients");
    o.tun.routes.push_back(prefix_or_fail(r, 32, "--route"));
  }
  o.idle_timeout_s = static_cast<int>(a.idle_timeout_s);
  o.max_connections = a.max_connections;
  o.nat_outbound = a.nat_outbound;
  o.nat = nat_settings(a);
  o.authorized_clients = a.authorized_clients;
  for (const auto& r : a.client_routes) {
    const auto eq = r.find('=');
    if (eq == std::string::npos || eq == 0) fail("--client-route " + r + ": give NAME=PREFIX");
    const io::Ipv4Prefix p = prefix_or_fail(r.substr(eq + 1), 32, "--client-route");
    o.client_routes.emplace_back(r.substr(0, eq), io::Ipv4Prefix{p.network_be(), p.len});
  }
  if (!o.client_routes.empty() && o.authorized_clients.empty())
    fail("--client-route needs --authorized-clients: a route belongs to a client key");
  for (std::size_t i = 0; i < o.client_routes.size(); ++i) {
    const std::string& name = o.client_routes[i].first;  // (clang 14 cannot capture a structured binding)
    const io::Ipv4Prefix& p = o.client_routes[i].second;
    auto overlaps = [](const io::Ipv4Prefix& x, const io::Ipv4Prefix& y) {
      const std::uint32_t m = io::Ipv4Prefix{0, std::min(x.len, y.len)}.mask_be();
      return (x.addr_be & m) == (y.addr_be & m);
    };
    if (overlaps(p, o.tun.address))
      fail("--client-route " + name + "=" + p.to_string() + " overlaps the tunnel prefix " + o.tun.address.to_string());
    for (std::size_t j = 0; j < i; ++j)
      if (overlaps(p, o.client_routes[j].second))
        fail("--client-route " + name + "=" + p.to_string() + " overlaps " + o.client_routes[j].first + "=" +
             o.client_routes[j].second.to_string());
    if (std::count_if(o.client_routes.begin(), o.client_routes.begin() + static_cast<long>(i) + 1,
                      [&](const auto& c) { return c.first == name; }) > static_cast<long>(dp::kMaxClientSubnets))
      fail("--client-route: at most " + std::to_string(dp::kMaxClientSubnets) + " networks per client key");
    o.tun.routes.push_back(p);
  }
  o.reject_after_s = static_cast<int>(a.reject_after_s);
  o.max_clock_skew_s = static_cast<int>(a.max_clock_skew_s);
  o.socket_buffer = a.socket_buffer;
  o.sched = scheduler_or_fail(a);
  o.probe = probe_config(a);
  o.reload = std::move(reload);
  o.status = status_config(a, "server");
  return run_maybe_daemon(a, o, ctl::run_server);
}

// What `tun` and `benchmark` take the same way: the server, the uplinks, keys and
// timers, the strategy.
void client_common(const Args& a, ctl::ClientOptions& o) {
  o.aes256gcm = select_aead(a);
  std::string err;
  if (!crypto::decode_authkey(a.authkey, o.key, err)) fail("bad AuthKey: " + err);
  o.endpoints = a.endpoint.empty() ? ctl::authkey_endpoints(o.key)
                                   : std::vector<io::Endpoint>{endpoint_or_fail(a.endpoint, "--endpoint")};
  o.tun.mtu = a.mtu;
  o.tun.workers = static_cast<unsigned>(a.workers);
  o.handshake_timeout_ms = static_cast<int>(a.handshake_timeout_s * 1000);
  o.probe = probe_config(a);
  o.max_uplinks = a.max_uplinks;
  o.retry_delay_ms = static_cast<int>(a.retry_delay_s * 1000);
  o.max_retries = a.max_retries;
  if (!a.client_key_file.empty()) o.client_key = ctl::load_client_key(a.client_key_file);
  o.rekey_after_ms = static_cast<std::int64_t>(a.rekey_after_s * 1000);
  o.reject_after_ms = static_cast<std::int64_t>(a.reject_after_s * 1000);
  o.socket_buffer = a.socket_buffer;
  if (o.reject_after_ms <= o.rekey_after_ms)
    fail("reject_after (" + std::to_string(a.reject_after_s) + " s) must exceed rekey_after (" +
         std::to_string(a.rekey_after_s) + " s)");
  o.interfaces = a.interfaces;
  o.auto_discover = a.auto_discover;
  o.weights = a.weights;
  o.sched = scheduler_or_fail(a);
  check_weights(a);
}

int cmd_tun(const Args& a, ctl::ReloadFn reload) {
  ctl::ClientOptions o;
  if (a.authkey.empty()) fail("the client needs the server's AuthKey: as the argument, or auth_key in [client]");
  client_common(a, o);
  o.tun.name = a.tun_name;
  if (!a.ipv4.empty() && a.ipv4.front() != '/') o.tun.address = tunnel_address(a, "10.0.85.2");
  // else: the server assigns one from its pool (address 0 in the initiation)
  o.tun.offload = a.tun_offload;
  o.user = a.user;
  for (const auto& r : a.routes) {
    if (r.find(':') != std::string::npos) o.tun.routes6.push_back(prefix6_or_fail(r, "--route"));
    else o.tun.routes.push_back(prefix_or_fail(r, 32, "--route"));
  }
  o.tun.full_tunnel = a.full_tunnel;
  for (const auto& r : a.exclude) {
    if (r.find(':') != std::string::npos) o.tun.exclude6.push_back(prefix6_or_fail(r, "--exclude"));
    else o.tun.exclude.push_back(prefix_or_fail(r, 32, "--exclude"));
  }
  const bool excluded = !o.tun.exclude.empty() || !o.tun.exclude6.empty();
  if (excluded && !o.tun.full_tunnel) fail("--exclude only applies with --full-tunnel");
  if (o.tun.exclude.size() > 30 || o.tun.exclude6.size() > 30) fail("--exclude: at most 30 prefixes of each family");
  for (const auto& d : a.dns) {
    if (d.find('/') != std::string::npos) fail("--dns " + d + ": an address, not a prefix");
    o.dns.push_back(prefix_or_fail(d, 32, "--dns"));
  }
  if (o.dns.size() > 3) fail("--dns: at most 3 servers (the resolver reads no more)");
  o.gateway = a.gateway;
  o.gateway_nat = a.gateway_nat;
  o.tcp_fallback = a.tcp_fallback;
  o.tcp_fallback_after_ms = static_cast<int>(a.tcp_fallback_after_s * 1000);
  if (o.tcp_fallback && o.tcp_fallback_after_ms >= o.handshake_timeout_ms)
    fail("--tcp-fallback-after must be shorter than --handshake-timeout, or TCP is never tried at start");
  if (!o.gateway_nat && !o.gateway) fail("--no-gateway-nat only applies with --gateway");
  o.nat = nat_settings(a);
  if (o.gateway && o.tun.full_tunnel && !excluded)
    fail("--gateway with --full-tunnel: give the LAN as --exclude PREFIX, or its answers would go into the tunnel");
  o.reload = std::move(reload);
  o.status = status_config(a, "client");
  return run_maybe_daemon(a, o, ctl::run_client);
}

// triglav benchmark: a client without a TUN whose workers send (and/or receive) synthetic
// streams; the report goes to stdout.
int cmd_benchmark(const Args& a) {
  ctl::ClientOptions o;
  client_common(a, o);
  o.tun.none = true;
  // Every uplink is busy from the start: probed at the busy rate from the start, so that
  // the server's received counts (in the answers) follow closely.
  o.probe.interval_ns = std::min(o.probe.interval_ns, o.probe.busy_interval_ns);
  if (a.bench_reverse && a.bench_bidir) fail("--reverse or --bidir, not both");
  o.bench = a.bench;
  o.bench.enabled = true;
  o.bench.upload = !a.bench_reverse;
  o.bench.download = a.bench_reverse || a.bench_bidir;
  if (o.bench.interval_s > o.bench.duration_s) o.bench.interval_s = o.bench.duration_s;
  if (a.verbose == 0) spdlog::set_level(spdlog::level::warn);  // the report is the output
  return ctl::run_benchmark(o);
}

int cmd_config(const Args& a) {
  if (a.server_config == a.client_config) fail("config: give one of --server or --client");
  const std::string text = ctl::default_config(a.server_config ? ctl::Role::Server : ctl::Role::Client);
  if (a.output.empty() || a.output == "-") {
    std::fputs(text.c_str(), stdout);
    return 0;
  }
  FILE* f = std::fopen(a.output.c_str(), "wx");  // never overwrite
  if (f == nullptr)
    fail("cannot create " + a.output + ": " + std::strerror(errno) + (errno == EEXIST ? " (refusing to overwrite)" : ""));
  const bool ok = std::fputs(text.c_str(), f) >= 0;
  if (std::fclose(f) != 0 || !ok) fail("cannot write " + a.output);
  return 0;
}

void check_weights(const ctl::Settings& a) {
  const std::size_t n = std::max<std::size_t>(1, a.interfaces.size());
  if (!a.weights.empty() && a.weights.size() != n)
    fail("--weights: give one weight per uplink (" + std::to_string(n) + "), in the order of -i");
}

void add_strategy_option(CLI::App* c, Args& a) {
  c->add_option("--strategy", a.strategy,
                "how packets spread over uplinks: adaptive, lowest_latency, lowest_loss, weighted_round_robin, "
                "bandwidth_proportional, redundant, primary_backup, ecmp_aware")
      ->capture_default_str();
}

void add_probe_option(CLI::App* c, Args& a) {
  c->add_option("--probe-interval", a.probe_interval_s,
                "seconds between probes of an idle uplink (every 50 ms while one fails); probes are also "
                "keepalives")
      ->capture_default_str()->check(CLI::Range(0.05, 60.0));
  c->add_option("--busy-probe-interval", a.busy_probe_interval_s,
                "seconds between probes of an uplink that carries data, so that a path dying under "
                "traffic is noticed quickly (at most --probe-interval)")
      ->capture_default_str()->check(CLI::Range(0.02, 60.0));
}

void add_ops_options(CLI::App* c, Args& a) {
  c->add_option("--aead", a.aead, "ChaCha20-Poly1305 implementation: auto (the faster, measured at start), "
                                  "libsodium or openssl")
      ->capture_default_str()->check(CLI::IsMember({"auto", "libsodium", "openssl"}));
  c->add_option("--workers", a.workers,
                "dataplane worker threads, each with its own TUN queue and sockets, pinned to a CPU "
                "(0: one per CPU)")
      ->check(CLI::Range(0, static_cast<int>(dp::kMaxWorkers)));
  c->add_option("--cipher", a.cipher,
                 "transport cipher this end takes: auto (AES-256-GCM when the CPU has AES-NI and it is faster here, "
                 "else ChaCha20-Poly1305), chacha20-poly1305, or aes-256-gcm (whenever the peer agrees)")
      ->check(CLI::IsMember({"auto", "chacha20-poly1305", "aes-256-gcm"}));
  c->add_flag("--daemon", a.daemon,
              "run in the background (logs to syslog); returns once started, or with the start-up error");
  c->add_option("--user", a.user,
                "after set-up, run as this user with only CAP_NET_ADMIN and CAP_NET_RAW (e.g. nobody)");
  c->add_option("--pid-file", a.pid_file, "write the process id here (removed on exit; refused if one is running)");
  c->add_option("--control-socket", a.control_socket,
                "unix socket for `triglav status` (default /run/triglav/ROLE-TUN.sock; 'none': no socket)");
  c->add_option_function<std::string>(
      "--metrics-listen",
      [&a](const std::string& v) {
        a.metrics = true;
        a.metrics_listen = v;
      },
      "serve Prometheus metrics at http://IP:PORT/metrics (e.g. 127.0.0.1:9090)");
}

void add_query_options(CLI::App* c, Args& a) {
  c->add_option("--socket", a.query.socket, "control socket (default: the only one in /run/triglav)");
  c->add_flag("--json", a.query.json, "print the JSON answer");
  c->add_flag("--detailed", a.query.detailed, "RTT variance, handshakes, peers and every counter");
}

void add_tun_options(CLI::App* c, Args& a, const char* default_ipv4) {
  c->add_option("--tun-name", a.tun_name, "TUN interface name")->capture_default_str();
  c->add_option("--ipv4", a.ipv4, std::string("tunnel address with prefix length (default ") +
                                      default_ipv4 + ")");
  c->add_option("--mtu", a.mtu, "TUN MTU")->capture_default_str()->check(CLI::Range(dp::kMinMtu, dp::kMaxMtu));
  c->add_option("--route", a.routes, "extra prefix to route through the tunnel (repeatable)");
  c->add_flag("!--no-tun-offload", a.tun_offload,
              "plain TUN packets: no TCP super-packets to segment here (virtio_net_hdr offloads off)");
}

// The command line over `a` (subcommands are found again by name).
std::unique_ptr<CLI::App> make_app(Args& a) {
  auto app = std::make_unique<CLI::App>("triglav: a multipath VPN that bonds several uplinks into one encrypted tunnel");
  app->require_subcommand(1);
  app->set_help_all_flag("--help-all", "help for every subcommand");
  app->add_flag("-v,--verbose", a.verbose, "more log output (-v debug, -vv trace)");
  app->add_option("--log-level", a.log_level, "trace, debug, info, warn, error or off")->capture_default_str();

  app->add_subcommand("version", "print the version");
  auto* counters = app->add_subcommand("counters", "describe the packet counters (status, log lines and metrics use them)");
  counters->add_flag("--list", a.list_counters, "one line per counter: name, total or drop, rx/tx/control, meaning")
      ->required();

  auto* keygen = app->add_subcommand("keygen", "create a server key file and print its AuthKey (or a client key)");
  keygen->add_option("-o,--output", a.output, "key file to create (mode 0600)");
  keygen->add_option("--address", a.addresses, "IP:PORT clients should use (repeatable)");
  keygen->add_flag("--client", a.client_key, "a client key (tgc1_...) for servers with authorized_clients");
  keygen->add_option("--name", a.key_name, "with --client: the name the server's list and status show");

  auto* config = app->add_subcommand("config", "print (or write) a complete, commented config file with the defaults");
  config->add_flag("--server", a.server_config, "a server config");
  config->add_flag("--client", a.client_config, "a client config");
  config->add_option("-o,--output", a.output, "file to create instead of printing (never overwritten)");

  auto* server = app->add_subcommand("server", "run a server (concentrator)");
  server->add_option("--config", a.config, "config file (see `triglav config --server`); flags override it");
  server->add_option("--key", a.key_file, "key file (from `triglav keygen`)");
  server->add_flag("--generate-key", a.generate_key, "generate a key (saved to --key FILE if given and missing)");
  server->add_option("--listen", a.listen, "UDP address to listen on (repeatable)")->capture_default_str();
  server->add_option("--address", a.addresses, "IP:PORT for the AuthKey (repeatable)");
  server->add_option("--idle-timeout", a.idle_timeout_s, "seconds before an idle session is dropped")
      ->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  server->add_flag("--nat-outbound", a.nat_outbound,
                   "forward the clients' traffic and masquerade it on the other interfaces (nftables)");
  server->add_option("--ipv6-prefix", a.ipv6_prefix,
                     "the tunnel's IPv6 /64: auto (a unique local prefix from the key), none, or e.g. "
                     "fd12:3456:789a:1::/64; clients get prefix::A.B.C.D")
      ->capture_default_str();
  server->add_flag("--tcp-fallback", a.tcp_fallback,
                   "also accept clients over TCP on each --listen port, for networks that block UDP");
  server->add_flag("--allow-benchmark", a.allow_benchmark,
                   "accept `triglav benchmark` sessions: synthetic traffic, counted and dropped, never on the TUN");
  server->add_option("--max-connections", a.max_connections, "clients served at once")
      ->capture_default_str()->check(CLI::Range(1, 1'000'000));
  server->add_option("--client-route", a.client_routes,
                     "NAME=PREFIX: a network behind the client with key NAME, routed to it (repeatable)");
  server->add_option("--authorized-clients", a.authorized_clients,
                     "only clients whose key is in this file (or directory of files) may connect; "
                     "changes apply within a second");
  server->add_option("--reject-after", a.reject_after_s, "seconds after which a session not rekeyed is dropped")
      ->capture_default_str()->check(CLI::Range(2.0, 7200.0));
  server->add_option("--max-clock-skew", a.max_clock_skew_s,
                     "seconds a client's clock may differ from ours; older or newer initiations are refused")
      ->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  add_tun_options(server, a, "10.0.85.1/24");
  add_strategy_option(server, a);
  add_probe_option(server, a);
  add_ops_options(server, a);

  auto* tun = app->add_subcommand("tun", "run a client: bring up a TUN device and connect");
  tun->add_option("--config", a.config, "config file (see `triglav config --client`); flags override it");
  tun->add_option("authkey", a.authkey, "the server's AuthKey (tg1_...); or auth_key in the config");
  tun->add_option("--endpoint", a.endpoint, "server IP:PORT, instead of the AuthKey's addresses");
  tun->add_option("--handshake-timeout", a.handshake_timeout_s, "seconds to wait for the server")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  add_tun_options(tun, a, "assigned by the server from its tunnel prefix");
  tun->add_option("-i,--interface", a.interfaces, "uplink interface (repeatable; default: one uplink by the routing table)");
  tun->add_flag("--auto-discover", a.auto_discover,
                "use every interface that is up with an IPv4 address as an uplink, and follow them");
  tun->add_flag("--full-tunnel", a.full_tunnel,
                "send all traffic through the tunnel (policy routing), except the uplinks' own and --exclude");
  tun->add_option("--exclude", a.exclude, "with --full-tunnel: a prefix that bypasses the tunnel, e.g. the LAN (repeatable)");
  tun->add_flag("--gateway", a.gateway,
                "bond a LAN behind this host: forward its traffic into the tunnel, masqueraded to the tunnel address");
  tun->add_flag("!--no-gateway-nat", a.gateway_nat,
                "with --gateway: forward the LAN's packets unchanged (the server routes the LAN to this client)");
  tun->add_option("--dns", a.dns, "DNS server to use through the tunnel while connected (repeatable, up to 3); "
                                  "/etc/resolv.conf is restored on exit");
  tun->add_option("--client-key", a.client_key_file, "this client's key file (`triglav keygen --client`)");
  tun->add_option("--rekey-after", a.rekey_after_s, "seconds between new handshakes of each uplink")
      ->capture_default_str()->check(CLI::Range(1.0, 3600.0));
  tun->add_option("--reject-after", a.reject_after_s, "seconds after which a session that could not rekey is dropped")
      ->capture_default_str()->check(CLI::Range(2.0, 7200.0));
  tun->add_flag("--tcp-fallback", a.tcp_fallback,
                "an uplink whose UDP handshakes go unanswered tries TCP to the server's port (its --tcp-fallback)");
  tun->add_option("--tcp-fallback-after", a.tcp_fallback_after_s, "seconds of unanswered UDP before an uplink tries TCP")
      ->capture_default_str()->check(CLI::Range(0.1, 600.0));
  tun->add_option("--retry-delay", a.retry_delay_s, "seconds between handshake attempts of an uplink")
      ->capture_default_str()->check(CLI::Range(0.05, 600.0));
  tun->add_option("--max-retries", a.max_retries,
                  "unanswered handshakes in a row after which an uplink waits twice as long each time (up to 30 s); "
                  "0: never slow down")
      ->capture_default_str()->check(CLI::Range(0, 1'000'000));
  tun->add_option("--max-uplinks", a.max_uplinks, "uplinks at most")
      ->capture_default_str()->check(CLI::Range(1, static_cast<int>(dp::kMaxUplinks)));
  add_strategy_option(tun, a);
  add_probe_option(tun, a);
  add_ops_options(tun, a);
  tun->add_option("--weights", a.weights, "per-uplink weights for weighted_round_robin, in -i order")
      ->delimiter(',')->check(CLI::PositiveNumber);

  auto* bench = app->add_subcommand(
      "benchmark", "measure the encrypted multipath transport to a server (--allow-benchmark there): no TUN, no root");
  bench->add_option("authkey", a.authkey, "the server's AuthKey (tg1_...)")->required();
  bench->add_option("--endpoint", a.endpoint, "server IP:PORT, instead of the AuthKey's addresses");
  bench->add_option("-t,--duration", a.bench.duration_s, "seconds to measure")
      ->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  bench->add_option("--interval", a.bench.interval_s, "seconds per report line")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  bench->add_option("-P,--streams", a.bench.streams, "parallel streams (UDP flows), spread over the uplinks")
      ->capture_default_str()->check(CLI::Range(1, static_cast<int>(dp::kMaxBenchStreams)));
  bench->add_flag("-R,--reverse", a.bench_reverse, "the server sends, this client receives");
  bench->add_flag("--bidir", a.bench_bidir, "both send at once");
  bench->add_flag("--json", a.bench.json, "one JSON object at the end instead of the report lines");
  bench->add_option("-i,--interface", a.interfaces, "uplink interface (repeatable; binding one needs CAP_NET_RAW)");
  bench->add_flag("--auto-discover", a.auto_discover, "every interface that is up with an IPv4 address, followed");
  bench->add_option("--client-key", a.client_key_file, "this client's key file (`triglav keygen --client`)");
  bench->add_option("--handshake-timeout", a.handshake_timeout_s, "seconds to wait for the server")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  bench->add_option("--mtu", a.mtu, "inner packet size of the streams")->capture_default_str()->check(CLI::Range(dp::kMinMtu, dp::kMaxMtu));
  bench->add_option("--aead", a.aead, "ChaCha20-Poly1305 implementation: auto, libsodium or openssl")
      ->capture_default_str()->check(CLI::IsMember({"auto", "libsodium", "openssl"}));
  bench->add_option("--workers", a.workers, "dataplane worker threads (0: one per CPU)")
      ->check(CLI::Range(0, static_cast<int>(dp::kMaxWorkers)));
  bench->add_option("--cipher", a.cipher, "transport cipher: auto, chacha20-poly1305 or aes-256-gcm")
      ->check(CLI::IsMember({"auto", "chacha20-poly1305", "aes-256-gcm"}));
  add_strategy_option(bench, a);
  add_probe_option(bench, a);
  bench->add_option("--weights", a.weights, "per-uplink weights for weighted_round_robin, in -i order")
      ->delimiter(',')->check(CLI::PositiveNumber);

  auto* status = app->add_subcommand("status", "show a running client's or server's uplinks, health and traffic");
  add_query_options(status, a);
  status->add_flag("--watch", a.query.watch, "redraw every --interval, like top (Ctrl-C ends)");
  status->add_option("--interval", a.query.interval_s, "seconds between redraws")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  status->add_option("--count", a.query.count, "with --watch: stop after this many redraws")->check(CLI::Range(0, 1'000'000));

  auto* diagnose = app->add_subcommand("diagnose", "check this machine for what triglav needs, and say how to fix what is missing");
  diagnose->add_option("-i,--interface", a.diag.interfaces, "uplink to check (repeatable; default: every one up with IPv4)");
  diagnose->add_option("--mtu", a.diag.mtu, "tunnel MTU the uplinks must carry")->capture_default_str()->check(CLI::Range(dp::kMinMtu, dp::kMaxMtu));
  diagnose->add_flag("--full", a.diag.full, "also forwarding and IPv6");
  diagnose->add_flag("--connectivity", a.diag.connectivity, "send a handshake to the server through each uplink");
  diagnose->add_option("authkey", a.diag.authkey, "the server's AuthKey (for --connectivity)");

  auto* completions = app->add_subcommand("completions", "print a shell completion script");
  completions->add_option("shell", a.shell, "bash, zsh or fish")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));

  auto* uplink = app->add_subcommand("uplink", "list the uplinks of a running client or server, or show one");
  uplink->require_subcommand(1);
  auto* list = uplink->add_subcommand("list", "every uplink, one per line");
  add_query_options(list, a);
  auto* show = uplink->add_subcommand("show", "one uplink in detail");
  add_query_options(show, a);
  show->add_option("uplink", a.query.uplink, "interface name, uplink id, or (server) peer address")->required();
  return app;
}

// `server` or `tun` and the value of --config, found before parsing so that the file
// can be read first and the flags parsed over it.
std::optional<ctl::Role> role_in(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view v = argv[i];
    if (v == "server") return ctl::Role::Server;
    if (v == "tun") return ctl::Role::Client;
    if (v == "keygen" || v == "config" || v == "version" || v == "status" || v == "uplink" || v == "diagnose" ||
        v == "completions" || v == "benchmark" || v == "counters")
      return std::nullopt;
  }
  return std::nullopt;
}

std::string config_in(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view v = argv[i];
    if (v == "--config" && i + 1 < argc) return argv[i + 1];
    if (v.starts_with("--config=")) return std::string(v.substr(9));
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  const auto role = role_in(argc, argv);
  const std::string config = role ? config_in(argc, argv) : std::string();
  try {
    if (!config.empty()) ctl::load_config(config, *role, a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "triglav: error: %s\n", e.what());
    return 1;
  }
  auto app = make_app(a);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app->exit(e);
  }
  // SIGHUP: the file again, the same flags over it; what may change at run time.
  ctl::ReloadFn reload;
  if (!config.empty())
    reload = [argc, argv, config, r = *role] {
      Args b;
      ctl::load_config(config, r, b);
      auto again = make_app(b);
      again->parse(argc, argv);
      spdlog::set_level(log_level_or_fail(b));
      check_weights(b);
      const ctl::StatusServerConfig st = status_config(b, r == ctl::Role::Server ? "server" : "client");
      return ctl::Reloadable{scheduler_or_fail(b), b.weights, st.metrics, st.metrics_listen};
    };

  try {
    setup_logging(a);
    if (!crypto::init()) fail("libsodium failed to initialise");
    if (app->got_subcommand("version")) {
      std::printf("triglav %s\n", TRIGLAV_VERSION);
      return 0;
    }
    if (app->got_subcommand("counters")) {
      std::fputs(dp::counter_list().c_str(), stdout);
      return 0;
    }
    if (app->got_subcommand("config")) return cmd_config(a);
    if (app->got_subcommand("status")) return ctl::run_status(a.query);
    if (app->got_subcommand("diagnose")) return ctl::run_diagnose(a.diag);
    if (app->got_subcommand("completions")) {
      std::fputs(ctl::completion_script(*app, a.shell).c_str(), stdout);
      return 0;
    }
    if (auto* up = app->get_subcommand("uplink"); up->parsed()) {
      a.query.what = up->got_subcommand("show") ? ctl::StatusQuery::What::UplinkShow : ctl::StatusQuery::What::UplinkList;
      return ctl::run_status(a.query);
    }
    ctl::block_signals();
    if (app->got_subcommand("keygen")) return cmd_keygen(a);
    if (app->got_subcommand("server")) return cmd_server(a, std::move(reload));
    if (app->got_subcommand("tun")) return cmd_tun(a, std::move(reload));
    if (app->got_subcommand("benchmark")) return cmd_benchmark(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "triglav: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
