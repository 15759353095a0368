#include "dataplane/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <vector>

#include "dataplane/replay_window.h"
#include "dataplane/flow.h"
#include "tests/support/uplinks.h"

namespace triglav::dp {
namespace {

using test::make;
using test::up;

int index_of(UplinkMask m) { return m == 0 ? -1 : std::countr_zero(m); }

// Share of picks per uplink over many flow hashes (or successive picks).
std::map<int, double> shares(Scheduler& s, int n = 20000) {
  std::map<int, double> c;
  for (int i = 0; i < n; ++i) c[index_of(s.pick(0x1234567ull * (i + 1)))] += 1.0 / n;
  return c;
}

const auto H = HealthState::Healthy;

TEST(Strategy, NamesRoundTrip) {
  for (auto s : {Strategy::Adaptive, Strategy::LowestLatency, Strategy::LowestLoss, Strategy::WeightedRoundRobin,
                 Strategy::BandwidthProportional, Strategy::Redundant, Strategy::PrimaryBackup, Strategy::EcmpAware})
    EXPECT_EQ(parse_strategy(strategy_name(s)), s);
  EXPECT_FALSE(parse_strategy("fastest"));
}

TEST(Scheduler, NothingUsableMeansNoUplink) {
  for (auto st : {Strategy::Adaptive, Strategy::Redundant, Strategy::PrimaryBackup, Strategy::EcmpAware}) {
    Scheduler s = make(st, {up(0, HealthState::Down, 10), up(1, HealthState::Down, 10)});
    EXPECT_EQ(s.pick(42), 0u) << strategy_name(st);
  }
}

TEST(Scheduler, UnhealthyUplinksAreTheLastResort) {
  for (auto st : {Strategy::Adaptive, Strategy::LowestLatency, Strategy::Redundant, Strategy::PrimaryBackup,
                  Strategy::EcmpAware, Strategy::WeightedRoundRobin}) {
    Scheduler s = make(st, {up(0, HealthState::Down, 10), up(1, HealthState::Unhealthy, 900)});
    EXPECT_EQ(s.pick(42), 0b10u) << strategy_name(st);  // slow beats nothing; Down never
    Scheduler t = make(st, {up(0, HealthState::Degraded, 10), up(1, HealthState::Unhealthy, 10)});
    EXPECT_EQ(t.pick(42), 0b01u) << strategy_name(st);  // while something usable is left, not at all
  }
}

TEST(Scheduler, DegradedUplinksOnlyWhenNothingBetter) {
  for (int i = 0; i <= static_cast<int>(Strategy::EcmpAware); ++i) {
    const auto st = static_cast<Strategy>(i);
    // Faster, more weight, more bandwidth: still not while a Healthy uplink is left.
    Scheduler s = make(st, {up(0, HealthState::Degraded, 5, 0, 100e6, 10), up(1, H, 50, 0, 1e6, 1)});
    for (std::uint64_t h = 1; h <= 64; ++h) {
      if (st == Strategy::Redundant) EXPECT_EQ(s.pick(h), 0b11u) << "a copy on a lossy uplink still helps";
      else if (st == Strategy::PrimaryBackup) EXPECT_EQ(s.pick(h), 0b01u) << "the primary until Unhealthy";
      else EXPECT_EQ(s.pick(h), 0b10u) << strategy_name(st);
    }
    // prefer_healthy off: Degraded is as usable as Healthy.
    SchedulerConfig c;
    c.strategy = st;
    c.prefer_healthy = false;
    Scheduler o(c);
    o.update(std::vector<UplinkView>{up(0, HealthState::Degraded, 5, 0, 100e6, 10), up(1, H, 50, 0, 1e6, 1)}, 0);
    EXPECT_EQ(o.usable_mask(), 0b11u) << strategy_name(st);
    Scheduler t = make(st, {up(0, HealthState::Degraded, 5), up(1, HealthState::Unhealthy, 1)});
    EXPECT_EQ(t.pick(7), 0b01u) << strategy_name(st);
  }
}

TEST(Scheduler, AdaptiveScoresAndSpread) {
  // Uplink 1: twice the RTT, some loss, half the bandwidth, behind NAT: worst everywhere.
  Scheduler s = make(Strategy::Adaptive, {up(0, H, 20, 0.0, 100e6), up(1, H, 40, 0.05, 50e6, 1, true)});
  // Each term is value / largest value: uplink 0 has half the worst RTT and the best
  // loss, bandwidth and NAT terms; uplink 1 the worst of all but bandwidth (1 - 50/100).
  EXPECT_NEAR(s.score(0), 0.35 * 0.5, 1e-9);
  EXPECT_NEAR(s.score(1), 0.35 + 0.35 + 0.20 * 0.5 + 0.10, 1e-9);
  auto c = shares(s);
  // Spread in proportion to 1 - score + 0.05: 0.875 : 0.15.
  EXPECT_NEAR(c[0], 0.875 / 1.025, 0.02);
  EXPECT_NEAR(c[1], 0.15 / 1.025, 0.02);
  // Equal uplinks share equally; the same flow always gets the same answer.
  Scheduler e = make(Strategy::Adaptive, {up(0, H, 20), up(1, H, 20)});
  auto ce = shares(e);
  EXPECT_NEAR(ce[0], 0.5, 0.02);
  EXPECT_EQ(e.pick(77), e.pick(77));
}

TEST(Scheduler, AdaptiveWeightsAreConfigurable) {
  SchedulerConfig c;
  c.weights = {1, 0, 0, 0};  // RTT only
  Scheduler s(c);
  s.update(std::vector<UplinkView>{up(0, H, 10, 0.5), up(1, H, 20, 0.0)}, 0);
  EXPECT_NEAR(s.score(0), 0.5, 1e-9);
  EXPECT_NEAR(s.score(1), 1.0, 1e-9);
}

TEST(Scheduler, LowestLatencyAndLowestLoss) {
  Scheduler l = make(Strategy::LowestLatency, {up(0, H, 30), up(1, H, 10), up(2, HealthState::Down, 1)});
  EXPECT_EQ(index_of(l.pick(1)), 1);
  Scheduler u = make(Strategy::LowestLatency, {up(0, HealthState::Unknown, -1), up(1, H, 80)});
  EXPECT_EQ(index_of(u.pick(1)), 1);  // a measured RTT beats none
  Scheduler o = make(Strategy::LowestLoss, {up(0, H, 10, 0.02), up(1, H, 50, 0.0), up(2, H, 40, 0.0)});
  EXPECT_EQ(index_of(o.pick(1)), 2);  // equal loss: lower RTT
}

TEST(Scheduler, WeightedRoundRobinThreeToOne) {
  Scheduler s = make(Strategy::WeightedRoundRobin, {up(0, H, 10, 0, 0, 3), up(1, H, 10, 0, 0, 1)});
  std::vector<int> seq;
  for (int i = 0; i < 8; ++i) seq.push_back(index_of(s.pick(0)));
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 0), 6);
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 1), 2);
  // Smooth: never more than three in a row on uplink 0.
  EXPECT_EQ(seq, (std::vector<int>{0, 0, 1, 0, 0, 0, 1, 0}));
}

TEST(Scheduler, BandwidthProportional) {
  Scheduler s = make(Strategy::BandwidthProportional, {up(0, H, 10, 0, 50e6), up(1, H, 10, 0, 30e6)});
  auto c = shares(s, 8000);
  EXPECT_NEAR(c[0], 50.0 / 80, 0.01);
  EXPECT_NEAR(c[1], 30.0 / 80, 0.01);
}

TEST(Scheduler, RedundantUsesEveryUsableUplink) {
  Scheduler s = make(Strategy::Redundant, {up(0, H, 10), up(1, HealthState::Degraded, 10), up(2, HealthState::Down, 1)});
  EXPECT_EQ(s.pick(5), 0b011u);
}

TEST(Scheduler, PrimaryBackupWithHysteresis) {
  SchedulerConfig c;
  c.strategy = Strategy::PrimaryBackup;
  c.primary = 0;
  c.hysteresis_ns = 3'000;
  Scheduler s(c);
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10), up(2, H, 30)}, 0);
  EXPECT_EQ(index_of(s.pick(1)), 0);  // primary while usable, even if slower
  s.update(std::vector<UplinkView>{up(0, HealthState::Degraded, 50), up(1, HealthState::Degraded, 10)}, 50);
  EXPECT_EQ(index_of(s.pick(1)), 0);  // Degraded, but nothing is better
  s.update(std::vector<UplinkView>{up(0, HealthState::Degraded, 50), up(1, H, 10), up(2, H, 30)}, 100);
  EXPECT_EQ(index_of(s.pick(1)), 0);  // the primary until it is Unhealthy or Down
  s.update(std::vector<UplinkView>{up(0, HealthState::Unhealthy, 50), up(1, H, 10), up(2, H, 30)}, 200);
  EXPECT_EQ(index_of(s.pick(1)), 1);  // the best backup
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10), up(2, H, 30)}, 1'000);
  EXPECT_EQ(index_of(s.pick(1)), 1);  // healthy again, but not for long enough
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10), up(2, H, 30)}, 3'999);
  EXPECT_EQ(index_of(s.pick(1)), 1);
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10), up(2, H, 30)}, 4'000);
  EXPECT_EQ(index_of(s.pick(1)), 0);  // back after the hysteresis
  // A wobble resets the clock.
  s.update(std::vector<UplinkView>{up(0, HealthState::Down, 50), up(1, H, 10)}, 5'000);
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10)}, 6'000);
  s.update(std::vector<UplinkView>{up(0, HealthState::Degraded, 50), up(1, H, 10)}, 7'000);
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10)}, 8'000);
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10)}, 10'000);
  EXPECT_EQ(index_of(s.pick(1)), 1);
  s.update(std::vector<UplinkView>{up(0, H, 50), up(1, H, 10)}, 11'000);
  EXPECT_EQ(index_of(s.pick(1)), 0);
}

TEST(Scheduler, PrimaryBackupUsesTheProbersHealthySinceTime) {
  SchedulerConfig c;
  c.strategy = Strategy::PrimaryBackup;
  c.hysteresis_ns = 3'000;
  Scheduler s(c);
  s.update(std::vector<UplinkView>{up(0, HealthState::Down, 50), up(1, H, 10)}, 0);
  EXPECT_EQ(index_of(s.pick(1)), 1);
  // No update while idle; the next one comes long after the primary became Healthy.
  auto p = up(0, H, 50);
  p.healthy_since_ns = 1'000;
  s.update(std::vector<UplinkView>{p, up(1, H, 10)}, 3'500);
  EXPECT_EQ(index_of(s.pick(1)), 1);  // 2.5 units of Healthy: not yet
  s.update(std::vector<UplinkView>{p, up(1, H, 10)}, 4'000);
  EXPECT_EQ(index_of(s.pick(1)), 0);
}

TEST(Scheduler, EcmpIsStableAndMovesOnlyTheFailedUplinksFlows) {
  std::vector<UplinkView> three{up(0, H, 10), up(1, H, 10), up(2, H, 10)};
  Scheduler s = make(Strategy::EcmpAware, three);
  std::vector<int> before;
  for (int f = 0; f < 3000; ++f) before.push_back(index_of(s.pick(0xabcdefull * (f + 1))));
  auto c = shares(s, 3000);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(c[i], 1.0 / 3, 0.05);
  three[1].state = HealthState::Down;
  s.update(three, 0);
  for (int f = 0; f < 3000; ++f) {
    const int now = index_of(s.pick(0xabcdefull * (f + 1)));
    if (before[static_cast<std::size_t>(f)] != 1) EXPECT_EQ(now, before[static_cast<std::size_t>(f)]) << f;
    else EXPECT_NE(now, 1);
  }
}

}  // namespace
}  // namespace triglav::dp
