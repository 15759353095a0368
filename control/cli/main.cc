// triglav: the command line parsed (over the config file, when one is given), then the
// command it names run. Everything it says on failure is one line, `triglav: error: ...`.
#if TRIGLAV_MIMALLOC
#include <mimalloc-new-delete.h>
#endif

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "control/cli/args.h"
#include "control/cli/completions.h"
#include "crypto/aead.h"
#include "dataplane/counters.h"
#include "triglav_version.h"

using namespace triglav;
using namespace triglav::cli;

namespace {
// Each line of a message (config files report every mistake) as an error line.
void print_error(const std::string& what) {
  std::size_t at = 0;
  do {
    const std::size_t end = what.find('\n', at);
    std::fprintf(stderr, "triglav: error: %s\n", what.substr(at, end == std::string::npos ? end : end - at).c_str());
    at = end == std::string::npos ? end : end + 1;
  } while (at != std::string::npos);
}
}  // namespace

int main(int argc, char** argv) {
  Args a;
  const auto role = role_in(argc, argv);
  const std::string config = role ? config_in(argc, argv) : std::string();
  if (!config.empty()) {
    const auto problems = ctl::read_config_file(config, *role, a, &a.config_source);
    if (!problems.empty()) {
      print_error(ctl::joined(problems));
      return 1;
    }
  }
  auto app = make_app(a);
  try {
    app->parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app->exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app->exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "triglav: error: %s (see triglav --help)\n", e.what());
    return 1;
  }
  if (role) forget_flags_given(*app, a, *role);
  // SIGHUP: the file again, the same flags over it; what may change at run time.
  ctl::ReloadFn reload;
  if (!config.empty())
    reload = [argc, argv, config, r = *role] {
      Args b;
      ctl::load_config(config, r, b);
      auto again = make_app(b);
      again->parse(argc, argv);
      return reloadable(b, r);
    };

  try {
    setup_logging(a);
    if (!crypto::init()) throw std::runtime_error("libsodium failed to initialise");
    if (app->got_subcommand("version")) {
      std::printf("triglav %s\n", TRIGLAV_VERSION);
      return 0;
    }
    if (app->got_subcommand("counters")) {
      std::fputs(dp::counter_list().c_str(), stdout);
      return 0;
    }
    if (app->got_subcommand("config")) return cmd_config(a);
    if (app->got_subcommand("check")) return cmd_check(a);
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
    print_error(e.what());
    return 1;
  }
  return 1;
}
