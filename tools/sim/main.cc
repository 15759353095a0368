// triglav-simulate: runs scenarios x strategies x seeds through the in-process simulation
// (tools/sim/sim.h) on every core and prints, per strategy, the delivery ratio, the
// deadline-met ratio, the failover time distribution and the bytes sent per delivered
// byte. See docs/LINKEM.md, "Simulation".
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tools/sim/sim.h"

namespace fs = std::filesystem;
using namespace triglav;

namespace {

struct Args {
  std::vector<std::string> scenarios;
  std::string dir;
  std::vector<std::string> strategies{"all"};
  unsigned seeds = 20;
  std::uint64_t seed = 1;
  unsigned threads = 0;
  unsigned flows = 4;
  double pps = 50;
  std::string deadline = "150ms", duration = "0", probe_interval = "1s", fast_interval = "50ms";
  std::vector<double> weights;
  bool per_scenario = false, markdown = false, no_prefer_healthy = false;
  std::string json;
};

std::int64_t duration_arg(const std::string& opt, const std::string& v) {
  std::int64_t ns = 0;
  if (!linkem::parse_duration(v, ns)) throw CLI::ValidationError(opt, "'" + v + "' is not a duration such as 150ms or 1s");
  return ns;
}

struct Cell {
  sim::RunResult sum;
  unsigned runs = 0;
};

struct Row {
  std::string name;
  double delivered = 0, on_time = 0, p50 = 0, p90 = 0, max = 0, per_run = 0, cost = 0, out_of_order = 0;
};

Row summarise(const std::string& name, Cell c) {
  Row r;
  r.name = name;
  const double sent = static_cast<double>(std::max<std::uint64_t>(1, c.sum.sent));
  r.delivered = static_cast<double>(c.sum.delivered) / sent;
  r.on_time = static_cast<double>(c.sum.on_time) / sent;
  r.p50 = sim::quantile(c.sum.disruptions_ms, 0.5);
  r.p90 = sim::quantile(c.sum.disruptions_ms, 0.9);
  r.max = c.sum.disruptions_ms.empty() ? 0 : *std::max_element(c.sum.disruptions_ms.begin(), c.sum.disruptions_ms.end());
  r.per_run = static_cast<double>(c.sum.disruptions_ms.size()) / std::max(1u, c.runs);
  r.out_of_order = static_cast<double>(c.sum.out_of_order) / static_cast<double>(std::max<std::uint64_t>(1, c.sum.delivered));
  r.cost = static_cast<double>(c.sum.data_bytes) / static_cast<double>(std::max<std::uint64_t>(1, c.sum.delivered_bytes));
  return r;
}

int run(const Args& a) {
  // Scenarios: names in the directory, paths, or every file of the directory.
  std::vector<std::string> files;
  if (a.scenarios.empty() || (a.scenarios.size() == 1 && a.scenarios[0] == "all")) {
    if (!fs::is_directory(a.dir)) throw std::runtime_error("scenario directory " + a.dir + " does not exist");
    for (const auto& e : fs::directory_iterator(a.dir))
      if (e.path().extension() == ".toml") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
  } else {
    for (const auto& s : a.scenarios)
      files.push_back(fs::exists(s) ? s : (fs::path(a.dir) / (s + ".toml")).string());
  }
  std::vector<linkem::Scenario> scs;
  for (const auto& f : files) scs.push_back(linkem::load_scenario(f));
  if (scs.empty()) throw std::runtime_error("no scenarios in " + a.dir);

  std::vector<dp::Strategy> strategies;
  for (const auto& s : a.strategies) {
    if (s == "all") {
      for (int i = 0; i <= static_cast<int>(dp::Strategy::Aggregate); ++i) strategies.push_back(static_cast<dp::Strategy>(i));
    } else if (auto st = dp::parse_strategy(s)) {
      strategies.push_back(*st);
    } else {
      throw std::runtime_error("--strategy: '" + s + "' is not a strategy");
    }
  }

  sim::SimConfig base;
  base.flows = a.flows;
  base.flow_pps = a.pps;
  base.deadline_ns = duration_arg("--deadline", a.deadline);
  base.duration_ns = duration_arg("--duration", a.duration);
  base.probe.interval_ns = duration_arg("--probe-interval", a.probe_interval);
  base.probe.fast_interval_ns = duration_arg("--fast-interval", a.fast_interval);
  base.weights = a.weights;
  base.sched.prefer_healthy = !a.no_prefer_healthy;

  const std::size_t per_strategy = scs.size() * a.seeds;
  const std::size_t jobs = strategies.size() * per_strategy;
  std::vector<sim::RunResult> results(jobs);
  std::atomic<std::size_t> next{0};
  const unsigned threads = a.threads > 0 ? a.threads : std::max(1u, std::thread::hardware_concurrency());
  const auto t0 = std::chrono::steady_clock::now();
  auto work = [&] {
    for (std::size_t j; (j = next.fetch_add(1)) < jobs;) {
      sim::SimConfig c = base;
      c.sched.strategy = strategies[j / per_strategy];
      const std::size_t sc = (j % per_strategy) / a.seeds;
      c.seed = a.seed + j % a.seeds;  // the same seeds for every strategy
      results[j] = sim::run(scs[sc], c);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::vector<Cell> by_strategy(strategies.size());
  std::vector<std::vector<Cell>> by_scenario(strategies.size(), std::vector<Cell>(scs.size()));
  for (std::size_t j = 0; j < jobs; ++j) {
    const std::size_t st = j / per_strategy, sc = (j % per_strategy) / a.seeds;
    by_strategy[st].sum.add(results[j]);
    ++by_strategy[st].runs;
    by_scenario[st][sc].sum.add(results[j]);
    ++by_scenario[st][sc].runs;
  }

  std::printf("%zu runs (%zu scenarios x %zu strategies x %u seeds, %u flows each way at %.0f packets/s, "
              "deadline %s) in %.1f s on %u threads\n\n",
              jobs, scs.size(), strategies.size(), a.seeds, a.flows, a.pps, a.deadline.c_str(), secs, threads);
  const char* fmt_head = a.markdown
      ? "| strategy | delivered | on time | failover p50 | p90 | max | failovers per run | bytes sent per delivered | out of order |\n|---|---|---|---|---|---|---|---|---|\n"
      : "%-24s %10s %9s %13s %9s %9s %10s %10s %9s\n";
  if (a.markdown) std::printf("%s", fmt_head);
  else std::printf(fmt_head, "strategy", "delivered", "on time", "failover p50", "p90", "max", "per run", "bytes/del",
                   "reordered");
  nlohmann::json out;
  out["runs"] = jobs;
  out["seconds"] = secs;
  out["deadline_ms"] = static_cast<double>(base.deadline_ns) / 1e6;
  for (std::size_t st = 0; st < strategies.size(); ++st) {
    const Row r = summarise(dp::strategy_name(strategies[st]), by_strategy[st]);
    if (a.markdown)
      std::printf("| %s | %.3f %% | %.3f %% | %.0f ms | %.0f ms | %.0f ms | %.2f | %.2f | %.3f %% |\n", r.name.c_str(),
                  r.delivered * 100, r.on_time * 100, r.p50, r.p90, r.max, r.per_run, r.cost, r.out_of_order * 100);
    else
      std::printf("%-24s %9.3f%% %8.3f%% %10.0f ms %6.0f ms %6.0f ms %10.2f %10.2f %8.3f%%\n", r.name.c_str(),
                  r.delivered * 100, r.on_time * 100, r.p50, r.p90, r.max, r.per_run, r.cost, r.out_of_order * 100);
    nlohmann::json js = {{"delivered", r.delivered}, {"on_time", r.on_time},  {"failover_p50_ms", r.p50},
                         {"failover_p90_ms", r.p90}, {"failover_max_ms", r.max}, {"failovers_per_run", r.per_run},
                         {"bytes_per_delivered", r.cost}, {"out_of_order", r.out_of_order}};
    for (std::size_t sc = 0; sc < scs.size(); ++sc) {
      const Row s = summarise(scs[sc].name, by_scenario[st][sc]);
      js["scenarios"][scs[sc].name] = {{"delivered", s.delivered}, {"on_time", s.on_time},
                                       {"failover_p90_ms", s.p90}, {"bytes_per_delivered", s.cost}};
    }
    out["strategies"][r.name] = js;
  }
  if (a.per_scenario) {  // on-time percentage per scenario and strategy
    std::printf(a.markdown ? "\n| on time | " : "\n%-22s", a.markdown ? "" : "on time %");
    for (auto s : strategies) std::printf(a.markdown ? "%s | " : " %9.9s", dp::strategy_name(s));
    std::printf("\n");
    if (a.markdown) {
      std::printf("|---|");
      for (std::size_t i = 0; i < strategies.size(); ++i) std::printf("---|");
      std::printf("\n");
    }
    for (std::size_t sc = 0; sc < scs.size(); ++sc) {
      std::printf(a.markdown ? "| %s |" : "%-22s", scs[sc].name.c_str());
      for (std::size_t st = 0; st < strategies.size(); ++st) {
        const Row s = summarise(scs[sc].name, by_scenario[st][sc]);
        std::printf(a.markdown ? " %.1f |" : " %9.2f", s.on_time * 100);
      }
      std::printf("\n");
    }
  }
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    f << out.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + a.json);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (const char* d = std::getenv("TRIGLAV_SCENARIOS")) a.dir = d;
  else a.dir = "tools/scenarios";
  CLI::App app{"triglav-simulate: the real scheduler, health and dedup code over simulated scenario links"};
  app.add_option("scenarios", a.scenarios, "scenario names (in --scenarios), files, or 'all' (the default)");
  app.add_option("--scenarios", a.dir, "directory of scenario files")->capture_default_str();
  app.add_option("--strategy", a.strategies, "strategies to compare, or 'all'")->capture_default_str();
  app.add_option("--seeds", a.seeds, "runs per scenario and strategy")->capture_default_str()->check(CLI::Range(1u, 1000000u));
  app.add_option("--seed", a.seed, "first seed")->capture_default_str();
  app.add_option("--threads", a.threads, "worker threads (0: one per core)")->capture_default_str();
  app.add_option("--flows", a.flows, "constant-rate flows in each direction")->capture_default_str()->check(CLI::Range(1u, 1000u));
  app.add_option("--pps", a.pps, "packets per second of each flow")->capture_default_str()->check(CLI::Range(1.0, 100000.0));
  app.add_option("--deadline", a.deadline, "one-way latency a packet must meet to count as on time")->capture_default_str();
  app.add_option("--duration", a.duration, "simulated time per run (0: the scenario's)")->capture_default_str();
  app.add_option("--probe-interval", a.probe_interval, "probe interval of a Healthy uplink")->capture_default_str();
  app.add_option("--fast-interval", a.fast_interval, "probe interval of an uplink that is not Healthy")->capture_default_str();
  app.add_option("--weights", a.weights, "weighted_round_robin weights by uplink");
  app.add_flag("--per-scenario", a.per_scenario, "also print on-time percentages per scenario and strategy");
  app.add_flag("--no-prefer-healthy", a.no_prefer_healthy, "Degraded uplinks as usable as Healthy ones");
  app.add_flag("--markdown", a.markdown, "print Markdown tables");
  app.add_option("--json", a.json, "write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "triglav-simulate: error: %s\n", e.what());
    return 1;
  }
}
