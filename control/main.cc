// The triglav command line: keygen, server, tun, version.
#include <mimalloc-new-delete.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "control/client.h"
#include "control/key_file.h"
#include "control/runtime.h"
#include "control/server.h"
#include "crypto/aead.h"
#include "crypto/authkey.h"
#include "dataplane/scheduler.h"
#include "dataplane/wire.h"
#include "triglav_version.h"

namespace {

using namespace triglav;

struct Args {
  int verbose = 0;
  std::string log_level = "info";
  // keygen
  std::string output;
  std::vector<std::string> addresses;
  // server
  std::string key_file;
  bool generate_key = false;
  std::string listen = "0.0.0.0:" + std::to_string(dp::kDefaultPort);
  int idle_timeout = 180;
  // tun
  std::string authkey;
  std::string endpoint;
  std::vector<std::string> routes;
  double handshake_timeout = 10;
  double probe_interval = 1;
  double busy_probe_interval = 0.25;
  std::vector<std::string> interfaces;
  bool auto_discover = false;
  std::string strategy = "adaptive";
  std::vector<double> weights;
  // both
  std::string tun_name = "tg0";
  std::string ipv4;
  int mtu = dp::kDefaultMtu;
};

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

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

dp::SchedulerConfig scheduler_or_fail(const Args& a) {
  dp::SchedulerConfig c;
  auto s = dp::parse_strategy(a.strategy);
  if (!s)
    fail("--strategy: '" + a.strategy + "' is not one of adaptive, lowest_latency, lowest_loss, "
         "weighted_round_robin, bandwidth_proportional, redundant, primary_backup, ecmp_aware");
  c.strategy = *s;
  return c;
}

void setup_logging(const Args& a) {
  auto logger = spdlog::stderr_color_st("triglav");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  auto level = spdlog::level::from_str(a.log_level);
  if (a.log_level != "off" && level == spdlog::level::off)
    fail("--log-level: '" + a.log_level + "' is not one of trace, debug, info, warn, error, off");
  if (a.verbose == 1 && level > spdlog::level::debug) level = spdlog::level::debug;
  if (a.verbose >= 2) level = spdlog::level::trace;
  spdlog::set_level(level);
}

int cmd_keygen(const Args& a) {
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

int cmd_server(const Args& a) {
  ctl::ServerOptions o;
  o.key_file = a.key_file;
  o.generate_key = a.generate_key;
  o.listen = endpoint_or_fail(a.listen, "--listen");
  for (const auto& t : a.addresses) o.advertise.push_back(endpoint_or_fail(t, "--address"));
  o.tun.name = a.tun_name;
  o.tun.address = prefix_or_fail(a.ipv4.empty() ? "10.0.85.1/24" : a.ipv4, 24, "--ipv4");
  o.tun.mtu = a.mtu;
  for (const auto& r : a.routes) o.tun.routes.push_back(prefix_or_fail(r, 32, "--route"));
  o.idle_timeout_s = a.idle_timeout;
  o.sched = scheduler_or_fail(a);
  o.probe.interval_ns = static_cast<std::int64_t>(a.probe_interval * 1e9);
  o.probe.busy_interval_ns = static_cast<std::int64_t>(a.busy_probe_interval * 1e9);
  return ctl::run_server(o);
}

int cmd_tun(const Args& a) {
  ctl::ClientOptions o;
  std::string err;
  if (!crypto::decode_authkey(a.authkey, o.key, err)) fail("bad AuthKey: " + err);
  o.endpoints = a.endpoint.empty() ? ctl::authkey_endpoints(o.key)
                                   : std::vector<io::Endpoint>{endpoint_or_fail(a.endpoint, "--endpoint")};
  o.tun.name = a.tun_name;
  o.tun.address = prefix_or_fail(a.ipv4.empty() ? "10.0.85.2/24" : a.ipv4, 24, "--ipv4");
  o.tun.mtu = a.mtu;
  for (const auto& r : a.routes) o.tun.routes.push_back(prefix_or_fail(r, 32, "--route"));
  o.handshake_timeout_ms = static_cast<int>(a.handshake_timeout * 1000);
  o.probe.interval_ns = static_cast<std::int64_t>(a.probe_interval * 1e9);
  o.probe.busy_interval_ns = static_cast<std::int64_t>(a.busy_probe_interval * 1e9);
  o.interfaces = a.interfaces;
  o.auto_discover = a.auto_discover;
  o.weights = a.weights;
  o.sched = scheduler_or_fail(a);
  if (!o.weights.empty() && o.weights.size() != std::max<std::size_t>(1, o.interfaces.size()))
    fail("--weights: give one weight per uplink (" + std::to_string(std::max<std::size_t>(1, o.interfaces.size())) +
         "), in the order of -i");
  return ctl::run_client(o);
}

void add_strategy_option(CLI::App* c, Args& a) {
  c->add_option("--strategy", a.strategy,
                "how packets spread over uplinks: adaptive, lowest_latency, lowest_loss, weighted_round_robin, "
                "bandwidth_proportional, redundant, primary_backup, ecmp_aware")
      ->capture_default_str();
}

void add_probe_option(CLI::App* c, Args& a) {
  c->add_option("--probe-interval", a.probe_interval,
                "seconds between probes of an idle uplink (every 50 ms while one fails); probes are also "
                "keepalives")
      ->capture_default_str()->check(CLI::Range(0.05, 60.0));
  c->add_option("--busy-probe-interval", a.busy_probe_interval,
                "seconds between probes of an uplink that carries data, so that a path dying under "
                "traffic is noticed quickly (at most --probe-interval)")
      ->capture_default_str()->check(CLI::Range(0.02, 60.0));
}

void add_tun_options(CLI::App* c, Args& a, const char* default_ipv4) {
  c->add_option("--tun-name", a.tun_name, "TUN interface name")->capture_default_str();
  c->add_option("--ipv4", a.ipv4, std::string("tunnel address with prefix length (default ") +
                                      default_ipv4 + ")");
  c->add_option("--mtu", a.mtu, "TUN MTU")->capture_default_str()->check(CLI::Range(576, 1980));
  c->add_option("--route", a.routes, "extra prefix to route through the tunnel (repeatable)");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"triglav: a multipath VPN that bonds several uplinks into one encrypted tunnel"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  app.add_flag("-v,--verbose", a.verbose, "more log output (-v debug, -vv trace)");
  app.add_option("--log-level", a.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();

  auto* version = app.add_subcommand("version", "print the version");

  auto* keygen = app.add_subcommand("keygen", "create a server key file and print its AuthKey");
  keygen->add_option("-o,--output", a.output, "key file to create (mode 0600)");
  keygen->add_option("--address", a.addresses, "IP:PORT clients should use (repeatable)");

  auto* server = app.add_subcommand("server", "run a server (concentrator)");
  server->add_option("--key", a.key_file, "key file (from `triglav keygen`)");
  server->add_flag("--generate-key", a.generate_key,
                   "generate a key (saved to --key FILE if given and missing)");
  server->add_option("--listen", a.listen, "UDP address to listen on")->capture_default_str();
  server->add_option("--address", a.addresses, "IP:PORT for the AuthKey (repeatable)");
  server->add_option("--idle-timeout", a.idle_timeout, "seconds before an idle session is dropped")
      ->capture_default_str()->check(CLI::Range(1, 86400));
  add_tun_options(server, a, "10.0.85.1/24");
  add_strategy_option(server, a);
  add_probe_option(server, a);

  auto* tun = app.add_subcommand("tun", "run a client: bring up a TUN device and connect");
  tun->add_option("authkey", a.authkey, "the server's AuthKey (tg1_...)")->required();
  tun->add_option("--endpoint", a.endpoint, "server IP:PORT, instead of the AuthKey's addresses");
  tun->add_option("--handshake-timeout", a.handshake_timeout, "seconds to wait for the server")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));

  add_tun_options(tun, a, "10.0.85.2/24");
  tun->add_option("-i,--interface", a.interfaces, "uplink interface (repeatable; default: one uplink by the routing table)");
  tun->add_flag("--auto-discover", a.auto_discover,
                "use every interface that is up with an IPv4 address as an uplink, and follow them");
  add_strategy_option(tun, a);
  add_probe_option(tun, a);
  tun->add_option("--weights", a.weights, "per-uplink weights for weighted_round_robin, in -i order")
      ->delimiter(',')->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    setup_logging(a);
    if (!crypto::init()) fail("libsodium failed to initialise");
    if (*version) {
      std::printf("triglav %s\n", TRIGLAV_VERSION);
      return 0;
    }
    ctl::block_signals();
    if (*keygen) return cmd_keygen(a);
    if (*server) return cmd_server(a);
    if (*tun) return cmd_tun(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "triglav: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
