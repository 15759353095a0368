// The command line's definition: every subcommand and flag (CLI11).
#include "control/cli/args.h"

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "control/benchmark.h"
#include "control/settings.h"
#include "dataplane/wire.h"
#include "io/units.h"
#include "triglav_version.h"

namespace triglav::cli {
namespace {

// "5m", "100ms" or a bare number of seconds, within [lo, hi]: rewritten to seconds.
CLI::Validator duration_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& v) -> std::string {
        char* end = nullptr;
        double secs = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0') {
          std::int64_t ns = 0;
          secs = io::parse_duration(v, ns) ? static_cast<double>(ns) / 1e9 : -1;
        }
        char buf[160];
        if (!(secs >= lo && secs <= hi)) {
          std::snprintf(buf, sizeof buf, "'%s' is not a duration from %gs to %gs (such as 30, \"100ms\" or \"5m\")",
                        v.c_str(), lo, hi);
          return buf;
        }
        std::snprintf(buf, sizeof buf, "%.17g", secs);
        v = buf;
        return {};
      },
      "DURATION");
}

// The flags of the settings table (control/settings.h) that command `cmd` takes.
void add_settings(CLI::App* c, Args& a, std::uint8_t cmd) {
  using ctl::Kind;
  for (const ctl::Setting& k : ctl::settings()) {
    if ((k.cli & cmd) == 0 || *k.flag == '\0') continue;
    CLI::Option* o = nullptr;
    switch (k.kind) {
      case Kind::Text:
        if (k.implies != nullptr) {
          o = c->add_option_function<std::string>(
              k.flag, [&a, &k](const std::string& v) { a.*k.text = v, a.*k.implies = true; }, k.help);
          break;
        }
        o = c->add_option(k.flag, a.*k.text, k.help);
        if (k.aliases != nullptr) {
          o->transform([&k](std::string v) { return ctl::full_choice(k, v); });
          o->description(std::string(k.help) + " (short names: " + k.aliases + ")");
        }
        if (k.choices != nullptr) o->check(CLI::IsMember(ctl::split_choices(k.choices)));
        if (!(a.*k.text).empty()) o->capture_default_str();
        break;
      case Kind::Texts:
        o = c->add_option(k.flag, a.*k.texts, k.help);
        if (k.bare != nullptr) o->expected(0, 1)->default_str(k.bare);  // "--dns" alone
        if (k.check != nullptr)  // each value as a file's would be checked
          o->check(CLI::Validator(
              [&k](std::string& v) {
                std::string why;
                return k.check(v, why) ? std::string() : "expected " + why;
              },
              "", ""));
        break;
      case Kind::Bool: o = c->add_flag(k.flag, a.*k.boolean, k.help); break;
      case Kind::Int:
        o = c->add_option(k.flag, a.*k.integer, k.help)
                ->check(CLI::Range(static_cast<int>(k.lo), static_cast<int>(k.hi)))
                ->capture_default_str();
        break;
      case Kind::Number:
        o = c->add_option(k.flag, a.*k.number, k.help)->check(CLI::Range(k.lo, k.hi))->capture_default_str();
        break;
      case Kind::Duration:
        o = c->add_option(k.flag, a.*k.number, k.help)->transform(duration_in(k.lo, k.hi))->type_name("DURATION")->capture_default_str();
        break;
      case Kind::Numbers:
        o = c->add_option(k.flag, a.*k.numbers, k.help)->delimiter(',')->check(CLI::PositiveNumber);
        break;
      case Kind::Custom:
        o = c->add_option_function<std::string>(
            k.flag,
            [&k, &a](const std::string& v) {
              if (!k.apply(v, a)) throw CLI::ValidationError(k.flag, "expected " + std::string(k.expect));
            },
            k.help);
        break;
    }
  }
}

void add_ops_options(CLI::App* c, Args& a) {
  c->add_option("--aead", a.aead, "ChaCha20-Poly1305 implementation: auto (the faster, measured at start), "
                                  "libsodium or openssl")
      ->capture_default_str()->check(CLI::IsMember({"auto", "libsodium", "openssl"}));
  c->add_flag("--daemon", a.daemon,
              "run in the background (logs to syslog); returns once started, or with the start-up error");
  c->add_option("--pid-file", a.pid_file, "write the process id here (removed on exit; refused if one is running)");
}

void add_query_options(CLI::App* c, Args& a) {
  c->add_option("--socket", a.query.socket, "control socket (default: the only one in /run/triglav)");
  c->add_flag("--json", a.query.json, "print the JSON answer");
  c->add_flag("--detailed", a.query.detailed, "RTT variance, handshakes, peers and every counter");
}

}  // namespace

// The command line over `a` (subcommands are found again by name).
std::unique_ptr<CLI::App> make_app(Args& a) {
  auto app = std::make_unique<CLI::App>("triglav: a multipath VPN that bonds several uplinks into one encrypted tunnel");
  app->require_subcommand(1);
  app->set_help_all_flag("--help-all", "help for every subcommand");
  app->add_flag("-v,--verbose", a.verbose, "more log output (-v debug, -vv trace)");
  app->set_version_flag("-V,--version", std::string("triglav ") + TRIGLAV_VERSION, "print the version and exit");
  add_settings(app.get(), a, ctl::kOnMain);

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
  server->add_flag("--generate-key", a.generate_key, "generate a key (saved to --key FILE if given and missing)");
  server->add_flag("--print-key", a.print_key,
                   "with --key FILE: print its AuthKey (making the key first with --generate-key) and exit "
                   "without serving");
  server->add_flag("--check", a.check, "check the config and the flags (and the files they name), then exit: 0 if "
                                      "all is well, else 1 with every mistake");
  add_settings(server, a, ctl::kOnServer);
  add_ops_options(server, a);

  auto* tun = app->add_subcommand("tun", "run a client: bring up a TUN device and connect");
  tun->add_option("--config", a.config, "config file (see `triglav config --client`); flags override it");
  tun->add_option("authkey", a.authkey, "the server's AuthKey (tg1_...); or auth_key in the config");
  tun->add_flag("--check", a.check, "check the config and the flags (and the files they name), then exit: 0 if all "
                                   "is well, else 1 with every mistake");
  add_settings(tun, a, ctl::kOnClient);
  add_ops_options(tun, a);

  auto* check = app->add_subcommand("check", "check a config file: every mistake, in file order, with its line; "
                                              "exits 0 if there is none, else 1");
  check->add_option("--config", a.config, "the config file")->required();
  check->add_flag("--server", a.server_config, "a server config (default: told by its [server] section)");
  check->add_flag("--client", a.client_config, "a client config (default: told by its [client] section)");

  auto* bench = app->add_subcommand(
      "benchmark", "measure the encrypted multipath transport to a server (--allow-benchmark there): no TUN, no root");
  bench->add_option("authkey", a.authkey, "the server's AuthKey (tg1_...)")->required();
  bench->add_option("-t,--duration", a.bench.duration_s, "seconds to measure")
      ->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  bench->add_option("--interval", a.bench.interval_s, "seconds per report line")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  bench->add_option("-P,--streams", a.bench.streams, "parallel streams (UDP flows), spread over the uplinks")
      ->capture_default_str()->check(CLI::Range(1, static_cast<int>(dp::kMaxBenchStreams)));
  bench->add_flag("-R,--reverse", a.bench_reverse, "the server sends, this client receives");
  bench->add_flag("--bidir", a.bench_bidir, "both send at once");
  bench->add_flag("--json", a.bench.json, "one JSON object at the end instead of the report lines");
  bench->add_option("--aead", a.aead, "ChaCha20-Poly1305 implementation: auto, libsodium or openssl")
      ->capture_default_str()->check(CLI::IsMember({"auto", "libsodium", "openssl"}));
  add_settings(bench, a, ctl::kOnBench);

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
  diagnose->add_option("authkey", a.diag.authkey,
                       "the server's AuthKey (for --connectivity; default: --config's, else the running client's)");
  diagnose->add_option("--config", a.diag.config, "with --connectivity: take the AuthKey from this client config");
  diagnose->add_option("--socket", a.diag.socket,
                       "with --connectivity: the running client to take the AuthKey from (default: the only one)");

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
        v == "completions" || v == "benchmark" || v == "counters" || v == "check")
      return std::nullopt;
  }
  return std::nullopt;
}

void forget_flags_given(CLI::App& app, Args& a, ctl::Role role) {
  const CLI::App* sub = app.get_subcommand(role == ctl::Role::Server ? "server" : "tun");
  for (const auto& k : ctl::settings()) {
    if (*k.section == '\0' || (k.cli & ctl::role_bit(role)) == 0 || (k.file & ctl::role_bit(role)) == 0) continue;
    const CLI::Option* o = sub->get_option_no_throw(ctl::long_flag(k));
    if (o != nullptr && o->count() > 0) a.config_source.lines.erase(std::string(k.section) + "." + k.key);
  }
  // auto_discover has a flag each way: the one given overrides the file's value.
  if (role == ctl::Role::Client) {
    if (sub->count("authkey") > 0) a.config_source.lines.erase("client.auth_key");  // the argument
    const bool on = sub->count("--auto-discover") > 0, off = sub->count("--no-auto-discover") > 0;
    if (on != off) {
      a.auto_discover = on;
      a.no_auto_discover = off;
      a.config_source.lines.erase("client.auto_discover");
    }
  }
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
