// The commands: settings from the command line and the config file turned into the
// options of a server, a client or a benchmark, which then run.
#include "control/cli/args.h"

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

namespace triglav::cli {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

void check_weights(const ctl::Settings& a) {
  const std::size_t n = std::max<std::size_t>(1, a.interfaces.size());
  if (!a.weights.empty() && a.weights.size() != n)
    fail("--weights: give one weight per uplink (" + std::to_string(n) + "), in the order of -i");
}

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
         "weighted_round_robin, bandwidth_proportional, redundant, primary_backup, ecmp_aware, aggregate");
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
  return prefix_or_fail(ctl::tunnel_address_text(a, default_addr), 24, "--ipv4");
}

spdlog::level::level_enum log_level_or_fail(const Args& a) {
  auto level = spdlog::level::from_str(a.log_level);
  if (a.log_level != "off" && level == spdlog::level::off)
    fail("--log-level: '" + a.log_level + "' is not one of trace, debug, info, warn, error, off");
  if (a.verbose == 1 && level > spdlog::level::debug) level = spdlog::level::debug;
  if (a.verbose >= 2) level = spdlog::level::trace;
  return level;
}

// The rules between the settings (ctl::check_settings), with every mistake at once.
void settings_or_fail(const Args& a, ctl::Role role, unsigned how) {
  const auto problems = ctl::check_settings(a, role, a.config_source, how);
  if (!problems.empty()) fail(ctl::joined(problems));
}

// --check: everything the command would start with was read and is consistent.
int checked(const Args& a) {
  std::printf("%s: no mistakes found\n", a.config.empty() ? "the command line" : ("config " + a.config).c_str());
  return 0;
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
  // aggregate leaves an uplink at its first unanswered probe (dp::Striper): probing busy
  // uplinks more often finds a dead one sooner, for a few small packets a second.
  if (a.strategy == "aggregate") p.busy_interval_ns = std::min(p.busy_interval_ns, ctl::kStripeBusyProbeNs);
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

// socket_buffer for both directions, unless recv_buffer_size / send_buffer_size say.
io::SocketBuffers socket_buffers(const ctl::Settings& a) {
  return {a.recv_buffer > 0 ? a.recv_buffer : a.socket_buffer, a.send_buffer > 0 ? a.send_buffer : a.socket_buffer};
}

ctl::NatSettings nat_settings(const ctl::Settings& a) {
  ctl::NatSettings n;
  n.tcp_timeout_s = static_cast<int>(a.nat_tcp_timeout_s);
  n.udp_timeout_s = static_cast<int>(a.nat_udp_timeout_s);
  n.port_min = a.nat_port_min;
  n.port_max = a.nat_port_max;
  return n;
}

// What `tun` and `benchmark` take the same way: the server, the uplinks, keys and
// timers, the strategy.
void client_common(const Args& a, ctl::ClientOptions& o, bool bench) {
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
  o.socket_buffers = socket_buffers(a);
  o.tcp_nodelay = a.tcp_nodelay;
  o.tcp_keepalive_s = static_cast<int>(a.tcp_keepalive_s);
  o.interfaces = a.interfaces;
  // tun without uplinks follows every usable interface unless told not to; a benchmark
  // (no root, so no binding to interfaces) only when asked.
  o.auto_discover = a.auto_discover;
  if (!bench && !a.auto_discover && a.interfaces.empty() && !a.no_auto_discover) {
    // Not asked for, so not where there is nothing to find (a server on this host, reached
    // over loopback): then one uplink wherever the routing table sends packets.
    o.auto_discover = !ctl::usable_interfaces(a.tun_name, {}).empty();
    if (!o.auto_discover) spdlog::debug("no interface to discover: one uplink by the routing table");
  }
  o.weights = a.weights;
  o.sched = scheduler_or_fail(a);
  check_weights(a);
}

}  // namespace

void setup_logging(const Args& a) {
  auto logger = spdlog::stderr_color_st("triglav");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(log_level_or_fail(a));
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


int cmd_server(const Args& a, ctl::ReloadFn reload) {
  settings_or_fail(a, ctl::Role::Server, a.check ? ctl::kCheckFiles | (a.generate_key ? ctl::kKeyMayBeMade : 0u) : 0u);
  ctl::ServerOptions o;
  o.aes256gcm = select_aead(a);
  o.key_file = a.key_file;
  o.generate_key = a.generate_key;
  // --print-key prints and exits only with a key file: a one-off --generate-key key
  // printed and dropped would serve nothing, so without one the server runs (and prints
  // it, as always).
  o.print_key = a.print_key && !a.key_file.empty();
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
  for (const auto& r : a.routes) o.tun.routes.push_back(prefix_or_fail(r, 32, "--route"));
  o.idle_timeout_s = static_cast<int>(a.idle_timeout_s);
  o.max_connections = a.max_connections;
  o.nat_outbound = a.nat_outbound;
  o.nat = nat_settings(a);
  o.authorized_clients = a.authorized_clients;
  for (const auto& r : a.client_routes) {  // checked by settings_or_fail
    const auto eq = r.find('=');
    const io::Ipv4Prefix p = prefix_or_fail(r.substr(eq + 1), 32, "--client-route");
    o.client_routes.emplace_back(r.substr(0, eq), io::Ipv4Prefix{p.network_be(), p.len});
    o.tun.routes.push_back(o.client_routes.back().second);
  }
  o.reject_after_s = static_cast<int>(a.reject_after_s);
  o.max_clock_skew_s = static_cast<int>(a.max_clock_skew_s);
  o.socket_buffers = socket_buffers(a);
  o.tcp_nodelay = a.tcp_nodelay;
  o.tcp_keepalive_s = static_cast<int>(a.tcp_keepalive_s);
  o.tcp_connect_timeout_s = static_cast<int>(a.tcp_connect_timeout_s);
  o.sched = scheduler_or_fail(a);
  o.probe = probe_config(a);
  o.reload = std::move(reload);
  o.status = status_config(a, "server");
  if (a.check) return checked(a);
  if (o.print_key) {  // prints and returns: nothing to run in the background
    if (a.daemon || !a.pid_file.empty()) fail("--print-key prints the AuthKey and exits: not with --daemon or --pid-file");
    return ctl::run_server(o);
  }
  return run_maybe_daemon(a, o, ctl::run_server);
}

int cmd_tun(const Args& a, ctl::ReloadFn reload) {
  settings_or_fail(a, ctl::Role::Client, a.check ? ctl::kCheckFiles : 0u);
  ctl::ClientOptions o;
  client_common(a, o, false);
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
  for (const auto& d : a.dns) o.dns.push_back(d == "server" ? io::Ipv4Prefix{0, 32} : prefix_or_fail(d, 32, "--dns"));
  o.gateway = a.gateway;
  o.gateway_nat = a.gateway_nat;
  o.tcp_fallback = a.tcp_fallback;
  o.tcp_fallback_after_ms = static_cast<int>(a.tcp_fallback_after_s * 1000);
  o.nat = nat_settings(a);
  o.reload = std::move(reload);
  o.status = status_config(a, "client");
  if (a.check) return checked(a);
  return run_maybe_daemon(a, o, ctl::run_client);
}

// triglav benchmark: a client without a TUN whose workers send (and/or receive) synthetic
// streams; the report goes to stdout.
int cmd_benchmark(const Args& a) {
  ctl::ClientOptions o;
  client_common(a, o, true);
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

int cmd_check(const Args& a) {
  if (a.server_config && a.client_config) fail("check: --server or --client, not both");
  std::optional<ctl::Role> role;
  if (a.server_config) role = ctl::Role::Server;
  if (a.client_config) role = ctl::Role::Client;
  if (!role) role = ctl::role_of_config(a.config);
  ctl::Settings s;
  ctl::ConfigSource where;
  if (!role) {  // unreadable, not TOML, or no single [server] / [client] to tell by
    const auto unread = ctl::read_config_file(a.config, ctl::Role::Client, s, &where);
    if (!where.parsed && !unread.empty()) fail(unread.front().message);
    fail("config " + a.config + ": give --server or --client (a [server] or a [client] section, not both, says "
         "which a file is)");
  }
  auto problems = ctl::read_config_file(a.config, *role, s, &where);
  if (where.parsed) {  // the file was TOML: the rules between keys too
    auto more = ctl::check_settings(s, *role, where, ctl::kCheckFiles);
    problems.insert(problems.end(), more.begin(), more.end());
    ctl::in_file_order(problems);
  }
  if (!problems.empty()) fail(ctl::joined(problems));
  std::printf("config %s: no mistakes found (a %s config)\n", a.config.c_str(),
              *role == ctl::Role::Server ? "server" : "client");
  return 0;
}

// What a SIGHUP may change, from the file read again and the same flags over it.
ctl::Reloadable reloadable(const Args& a, ctl::Role role) {
  spdlog::set_level(log_level_or_fail(a));
  check_weights(a);
  const ctl::StatusServerConfig st = status_config(a, role == ctl::Role::Server ? "server" : "client");
  return ctl::Reloadable{scheduler_or_fail(a), a.weights, st.metrics, st.metrics_listen};
}

}  // namespace triglav::cli
