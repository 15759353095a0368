// The settings table: every row complete and consistent, its defaults valid and written
// to the generated config file, and the command line built from it takes each flag on
// exactly the commands the row names.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "control/cli/args.h"
#include "control/config.h"
#include "control/settings.h"

namespace triglav {
namespace {

using ctl::Kind;
using ctl::Setting;

std::string name_of(const Setting& k) {
  return std::string(k.section) + "." + k.key + " " + k.flag;
}

int fields_set(const Setting& k) {
  return (k.text != nullptr) + (k.texts != nullptr) + (k.boolean != nullptr) + (k.integer != nullptr) +
         (k.number != nullptr) + (k.numbers != nullptr);
}

bool field_matches(const Setting& k) {
  switch (k.kind) {
    case Kind::Text: return k.text != nullptr;
    case Kind::Texts: return k.texts != nullptr;
    case Kind::Bool: return k.boolean != nullptr;
    case Kind::Int: return k.integer != nullptr;
    case Kind::Number:
    case Kind::Duration: return k.number != nullptr;
    case Kind::Numbers: return k.numbers != nullptr;
    case Kind::Custom: return k.apply != nullptr && k.expect != nullptr && k.show != nullptr;
  }
  return false;
}

// "-i,--interface" and "!--no-tun-offload" as {"-i", "--interface"} and {"--no-tun-offload"}.
std::vector<std::string> flag_names(const char* flag) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = flag;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (!cur.empty()) out.push_back(cur[0] == '!' ? cur.substr(1) : cur);
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

TEST(Settings, EveryRowIsComplete) {
  const ctl::Settings d;
  for (const Setting& k : ctl::settings()) {
    SCOPED_TRACE(name_of(k));
    EXPECT_EQ(*k.section != '\0', k.file != 0);
    EXPECT_EQ(*k.key != '\0', *k.section != '\0');
    EXPECT_EQ(*k.flag != '\0', k.cli != 0);
    if (*k.flag != '\0') {
      EXPECT_STRNE(k.help, "");
    }
    EXPECT_TRUE(field_matches(k));
    EXPECT_EQ(fields_set(k), k.kind == Kind::Custom ? 0 : 1);
    EXPECT_LE(k.lo, k.hi);
    if (k.kind == Kind::Int) {
      EXPECT_TRUE(d.*k.integer >= k.lo && d.*k.integer <= k.hi) << d.*k.integer;
    }
    if (k.kind == Kind::Number || k.kind == Kind::Duration) {
      EXPECT_TRUE(d.*k.number >= k.lo && d.*k.number <= k.hi) << d.*k.number;
    }
    if (k.choices != nullptr) {
      const auto c = ctl::split_choices(k.choices);
      EXPECT_NE(std::find(c.begin(), c.end(), d.*k.text), c.end()) << d.*k.text;
    }
    if (k.aliases != nullptr) {  // each short name stands for a full one, and is not one itself
      ASSERT_NE(k.choices, nullptr);
      const auto c = ctl::split_choices(k.choices);
      for (const auto& pair : ctl::split_choices(k.aliases)) {
        const auto eq = pair.find('=');
        ASSERT_NE(eq, std::string::npos) << pair;
        EXPECT_EQ(std::find(c.begin(), c.end(), pair.substr(0, eq)), c.end()) << pair;
        EXPECT_NE(std::find(c.begin(), c.end(), pair.substr(eq + 1)), c.end()) << pair;
      }
    }
    std::string why;
    if (k.check != nullptr && k.kind == Kind::Text) {
      EXPECT_TRUE(k.check(d.*k.text, why)) << why;
    }
    if (k.check != nullptr && k.kind == Kind::Texts) {
      for (const auto& v : d.*k.texts) EXPECT_TRUE(k.check(v, why)) << why;
    }
  }
}

TEST(Settings, NoKeyOrFlagTwiceForOneRole) {
  const auto all = ctl::settings();
  for (std::size_t i = 0; i < all.size(); ++i)
    for (std::size_t j = i + 1; j < all.size(); ++j) {
      const Setting& a = all[i];
      const Setting& b = all[j];
      SCOPED_TRACE(name_of(a) + " / " + name_of(b));
      if (*a.key != '\0' && std::string(a.section) == b.section && std::string(a.key) == b.key) {
        EXPECT_EQ(a.file & b.file, 0);
      }
      for (const auto& fa : flag_names(a.flag))
        for (const auto& fb : flag_names(b.flag))
          if (fa == fb) {
            EXPECT_EQ(a.cli & b.cli, 0);
          }
    }
}

TEST(Settings, SplitChoices) {
  EXPECT_EQ(ctl::split_choices("a, bb,c"), (std::vector<std::string>{"a", "bb", "c"}));
  EXPECT_EQ(ctl::split_choices("one"), (std::vector<std::string>{"one"}));
}

// The generated file holds every key of the role and reads back as the defaults.
TEST(Settings, GeneratedFileHoldsEveryKeyWithItsDefault) {
  for (ctl::Role role : {ctl::Role::Server, ctl::Role::Client}) {
    const std::string text = ctl::default_config(role);
    ctl::Settings s;
    ctl::parse_config(text, "generated", role, s);
    const ctl::Settings d;
    for (const Setting& k : ctl::settings()) {
      if ((k.file & ctl::role_bit(role)) == 0) continue;
      SCOPED_TRACE(name_of(k));
      if (k.same_as != nullptr) {  // another name: not in the file, and what it names is
        EXPECT_EQ(text.find("\n" + std::string(k.key) + " = "), std::string::npos);
        bool target = false;
        for (const Setting& t : ctl::settings())
          target |= (t.file & ctl::role_bit(role)) != 0 && t.same_as == nullptr &&
                    std::string(t.section) + "." + t.key == k.same_as;
        EXPECT_TRUE(target) << k.same_as;
        continue;
      }
      const auto at = text.find("\n[" + std::string(k.section) + "]\n");
      ASSERT_NE(at, std::string::npos);
      const auto line = text.find("\n" + std::string(k.key) + " = ", at);
      EXPECT_NE(line, std::string::npos);
      EXPECT_LT(line, text.find("\n\n", at + 1));
      if (k.show != nullptr) continue;  // a sample (key_file) or a Custom value
      switch (k.kind) {
        case Kind::Text: EXPECT_EQ(s.*k.text, d.*k.text); break;
        case Kind::Texts: EXPECT_EQ(s.*k.texts, d.*k.texts); break;
        case Kind::Bool: EXPECT_EQ(s.*k.boolean, d.*k.boolean); break;
        case Kind::Int: EXPECT_EQ(s.*k.integer, d.*k.integer); break;
        case Kind::Number:
        case Kind::Duration: EXPECT_DOUBLE_EQ(s.*k.number, d.*k.number); break;
        case Kind::Numbers: EXPECT_EQ(s.*k.numbers, d.*k.numbers); break;
        case Kind::Custom: break;
      }
    }
  }
}

// Parses argv (without the program name) over `a`; throws CLI::ParseError.
void parse(cli::Args& a, std::vector<std::string> argv) {
  auto app = cli::make_app(a);
  argv.insert(argv.begin(), "triglav");
  std::vector<char*> p;
  for (auto& s : argv) p.push_back(s.data());
  app->parse(static_cast<int>(p.size()), p.data());
}

TEST(SettingsCli, EveryFlagOnExactlyItsCommands) {
  cli::Args a;
  auto app = cli::make_app(a);
  const std::pair<std::uint8_t, CLI::App*> commands[] = {{ctl::kOnMain, app.get()},
                                                         {ctl::kOnServer, app->get_subcommand("server")},
                                                         {ctl::kOnClient, app->get_subcommand("tun")},
                                                         {ctl::kOnBench, app->get_subcommand("benchmark")}};
  for (const Setting& k : ctl::settings())
    for (const auto& name : flag_names(k.flag))
      for (const auto& [bit, cmd] : commands) {
        SCOPED_TRACE(name_of(k) + " on " + cmd->get_name());
        if ((k.cli & bit) != 0) {
          EXPECT_NE(cmd->get_option_no_throw(name), nullptr);
          continue;
        }
        bool elsewhere = false;  // another row gives this command the same flag
        for (const Setting& o : ctl::settings())
          for (const auto& n : flag_names(o.flag)) elsewhere |= n == name && (o.cli & bit) != 0;
        if (!elsewhere) {
          EXPECT_EQ(cmd->get_option_no_throw(name), nullptr);
        }
      }
}

TEST(SettingsCli, DurationsTakeUnitsOrSeconds) {
  cli::Args a;
  parse(a, {"tun", "tg1_x", "--reject-after", "5m", "--retry-delay", "250ms", "--handshake-timeout", "2.5"});
  EXPECT_DOUBLE_EQ(a.reject_after_s, 300);
  EXPECT_DOUBLE_EQ(a.retry_delay_s, 0.25);
  EXPECT_DOUBLE_EQ(a.handshake_timeout_s, 2.5);
  for (const char* bad : {"1s", "3h", "soon", "", "-5"}) {
    cli::Args b;
    EXPECT_THROW(parse(b, {"tun", "tg1_x", "--reject-after", bad}), CLI::ParseError) << bad;
  }
}

TEST(SettingsCli, RangesAndChoicesFromTheTable) {
  cli::Args a;
  EXPECT_THROW(parse(a, {"server", "--mtu", "100"}), CLI::ParseError);
  EXPECT_THROW(parse(a, {"server", "--socket-buffer", "1000"}), CLI::ParseError);
  EXPECT_THROW(parse(a, {"server", "--strategy", "fastest"}), CLI::ParseError);
  EXPECT_THROW(parse(a, {"--log-level", "loud", "server"}), CLI::ParseError);
  EXPECT_THROW(parse(a, {"benchmark", "tg1_x", "--weights", "1,-2"}), CLI::ParseError);
  cli::Args b;
  parse(b, {"--log-level", "debug", "benchmark", "tg1_x", "--weights", "3,1", "--strategy", "redundant"});
  EXPECT_EQ(b.log_level, "debug");
  EXPECT_EQ(b.weights, (std::vector<double>{3, 1}));
  EXPECT_EQ(b.strategy, "redundant");
}

// The strategy's short names (the first README's `--strategy latency`) stand for the full
// ones, on the command line and in the file; anything else is still refused.
TEST(SettingsCli, ShortStrategyNames) {
  const std::pair<const char*, const char*> names[] = {
      {"latency", "lowest_latency"}, {"loss", "lowest_loss"},  {"round_robin", "weighted_round_robin"},
      {"bandwidth", "bandwidth_proportional"}, {"backup", "primary_backup"}, {"ecmp", "ecmp_aware"},
      {"aggregate", "aggregate"}};
  for (const auto& [brief, full] : names) {
    SCOPED_TRACE(brief);
    cli::Args a;
    parse(a, {"tun", "tg1_x", "--strategy", brief});
    EXPECT_EQ(a.strategy, full);
    cli::Args b;
    ctl::parse_config(std::string("[multipath.scheduler]\nstrategy = \"") + brief + "\"\n", "t.toml",
                      ctl::Role::Server, b);
    EXPECT_EQ(b.strategy, full);
  }
  cli::Args c;
  EXPECT_THROW(parse(c, {"server", "--strategy", "lat"}), CLI::ParseError);
  EXPECT_THROW(parse(c, {"server", "--strategy", "latency=lowest_latency"}), CLI::ParseError);
  EXPECT_THROW(ctl::parse_config("[multipath.scheduler]\nstrategy = \"fast\"\n", "t.toml", ctl::Role::Server, c),
               std::runtime_error);
}

TEST(SettingsCli, VersionFlag) {
  for (const char* flag : {"--version", "-V"}) {
    cli::Args a;
    EXPECT_THROW(parse(a, {flag}), CLI::CallForVersion) << flag;
  }
}

TEST(SettingsCli, FlagsOverrideTheFile) {
  cli::Args a;
  ctl::parse_config("[transport]\nreject_after = \"10m\"\nworkers = 3\n[tun]\noffload = true\n", "t.toml",
                    ctl::Role::Client, a);
  parse(a, {"tun", "tg1_x", "--workers", "1", "--no-tun-offload", "--metrics-listen", "127.0.0.1:9100"});
  EXPECT_EQ(a.workers, 1);
  EXPECT_DOUBLE_EQ(a.reject_after_s, 600);  // not on the command line: the file's
  EXPECT_FALSE(a.tun_offload);
  EXPECT_TRUE(a.metrics);  // --metrics-listen turns the metrics on
  EXPECT_EQ(a.metrics_listen, "127.0.0.1:9100");
}

// OPERATIONS.md's table of config keys names every key and flag of the table.
TEST(Settings, OperationsGuideNamesEveryKeyAndFlag) {
  const char* docs = std::getenv("TRIGLAV_DOCS");
  ASSERT_NE(docs, nullptr) << "TRIGLAV_DOCS (set by meson test) names the docs directory";
  std::ifstream f(std::string(docs) + "/OPERATIONS.md");
  ASSERT_TRUE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  const auto begin = text.find("| section | key | flag | default |");
  ASSERT_NE(begin, std::string::npos);
  const std::string table = text.substr(begin, text.find("\n\n", begin) - begin);
  for (const Setting& k : ctl::settings()) {
    SCOPED_TRACE(name_of(k));
    if (*k.section != '\0') {
      EXPECT_NE(table.find("`[" + std::string(k.section) + "]`"), std::string::npos);
      EXPECT_NE(table.find("`" + std::string(k.key) + "`"), std::string::npos);
    }
    if ((k.cli & (ctl::kOnServer | ctl::kOnClient | ctl::kOnMain)) == 0) continue;  // benchmark: its own section
    const auto names = flag_names(k.flag);
    if (!names.empty()) {
      EXPECT_NE(table.find("`" + names.back()), std::string::npos) << names.back();
    }
  }
}

}  // namespace
}  // namespace triglav
