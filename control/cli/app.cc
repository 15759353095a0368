// The command line's definition: every subcommand and flag (CLI11).
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

}  // namespace

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

}  // namespace triglav::cli
