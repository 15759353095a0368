// The command line: what it sets (Args), its definition (app.cc) and the commands that
// run from it (commands.cc). main.cc only ties them together.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "control/benchmark.h"
#include "control/cli/diagnose.h"
#include "control/cli/status_cli.h"
#include "control/config.h"
#include "control/runtime.h"

namespace CLI {
class App;
}

namespace triglav::cli {

// Everything the command line sets: the settings a config file can carry too (the file
// is read first, the flags then override it), and what only the command line has.
struct Args : ctl::Settings {
  int verbose = 0;
  std::string config;     // --config FILE
  std::string output;     // keygen, config
  bool generate_key = false;
  bool print_key = false;  // server --print-key
  bool check = false;      // server/tun --check: check, then exit
  ctl::ConfigSource config_source;  // where --config's keys stand (main.cc)
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

// app.cc: the command line over `a` (subcommands are found again by name).
std::unique_ptr<CLI::App> make_app(Args& a);
// `server` or `tun` and the value of --config, found before parsing so that the file can
// be read first and the flags parsed over it.
std::optional<ctl::Role> role_in(int argc, char** argv);
std::string config_in(int argc, char** argv);
// After parsing: the keys whose flag was given no longer stand where the file has them.
void forget_flags_given(CLI::App& app, Args& a, ctl::Role role);

// commands.cc. Each returns the process's exit code, or throws std::runtime_error with
// the one-line reason.
int cmd_keygen(const Args& a);
int cmd_server(const Args& a, ctl::ReloadFn reload);
int cmd_tun(const Args& a, ctl::ReloadFn reload);
int cmd_benchmark(const Args& a);
int cmd_config(const Args& a);
int cmd_check(const Args& a);  // triglav check --config FILE
void setup_logging(const Args& a);
// What a SIGHUP may change: the log level, the scheduler, the weights and the metrics.
ctl::Reloadable reloadable(const Args& a, ctl::Role role);

}  // namespace triglav::cli
