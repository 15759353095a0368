#include "dataplane/health.h"

#include <gtest/gtest.h>

#include "dataplane/path_stats.h"

namespace triglav::dp {
namespace {

Health after(std::initializer_list<int> events) {  // 1 = success, 0 = failure
  Health h;
  for (int e : events) e ? h.on_success() : h.on_failure();
  return h;
}

TEST(Health, StartsUnknownAndASuccessMakesItHealthy) {
  Health h;
  EXPECT_EQ(h.state(), HealthState::Unknown);
  h.on_success();
  EXPECT_EQ(h.state(), HealthState::Healthy);
}

TEST(Health, FailureLadderExactly) {
  Health h;
  h.on_success();
  const HealthState expect[] = {
      HealthState::Healthy,   HealthState::Healthy,   HealthState::Degraded,   // failures 1-3
      HealthState::Degraded,  HealthState::Degraded,  HealthState::Unhealthy,  // 4-6
      HealthState::Unhealthy, HealthState::Unhealthy, HealthState::Unhealthy,  // 7-9
      HealthState::Down,      HealthState::Down,                               // 10-11
  };
  for (std::size_t i = 0; i < std::size(expect); ++i) {
    h.on_failure();
    EXPECT_EQ(h.state(), expect[i]) << "after " << i + 1 << " failures";
  }
}

TEST(Health, AnyStateToHealthyOnSuccess) {
  for (int failures : {0, 3, 6, 10}) {
    Health h;
    h.on_success();
    for (int i = 0; i < failures; ++i) h.on_failure();
    h.on_success();
    EXPECT_EQ(h.state(), HealthState::Healthy) << failures;
    EXPECT_EQ(h.consecutive_failures(), 0u);
  }
  EXPECT_EQ(after({0, 0, 0, 1}).state(), HealthState::Healthy);  // from Degraded
}

TEST(Health, FailuresFromUnknownClimbTheSameLadder) {
  EXPECT_EQ(after({0, 0}).state(), HealthState::Unknown);
  EXPECT_EQ(after({0, 0, 0}).state(), HealthState::Degraded);
  EXPECT_EQ(after({0, 0, 0, 0, 0, 0}).state(), HealthState::Unhealthy);
  EXPECT_EQ(after({0, 0, 0, 0, 0, 0, 0, 0, 0, 0}).state(), HealthState::Down);
}

TEST(Health, MeasurementFloors) {
  struct Case {
    double loss, rtt;
    HealthState expect;
  } cases[] = {
      {0.0, 50, HealthState::Healthy},    {0.10, 1000, HealthState::Healthy},
      {0.11, 50, HealthState::Degraded},  {0.0, 1001, HealthState::Degraded},
      {0.30, 5000, HealthState::Degraded}, {0.31, 50, HealthState::Unhealthy},
      {0.0, 5001, HealthState::Unhealthy},
  };
  for (const auto& c : cases) {
    Health h;
    h.on_success();
    h.on_metrics(c.loss, c.rtt);
    EXPECT_EQ(h.state(), c.expect) << c.loss << " " << c.rtt;
  }
  // A floor never improves a worse state, and clears when the numbers recover.
  Health h = after({1, 0, 0, 0, 0, 0, 0});
  h.on_metrics(0.2, 50);
  EXPECT_EQ(h.state(), HealthState::Unhealthy);
  h.on_success();
  EXPECT_EQ(h.state(), HealthState::Degraded);
  h.on_metrics(0, 50);
  EXPECT_EQ(h.state(), HealthState::Healthy);
}

TEST(Health, LinkEventsOverrideProbes) {
  Health h;
  h.on_success();
  h.on_link_down();
  EXPECT_EQ(h.state(), HealthState::Down);
  h.on_success();  // a late probe answer does not revive a link the kernel says is down
  EXPECT_EQ(h.state(), HealthState::Down);
  h.on_link_up();
  EXPECT_EQ(h.state(), HealthState::Unknown);
  h.on_success();
  EXPECT_EQ(h.state(), HealthState::Healthy);
  h.on_link_up();  // a repeated "up" message for a link that never went down changes nothing
  EXPECT_EQ(h.state(), HealthState::Healthy);
}

TEST(Health, Usability) {
  EXPECT_TRUE(usable(HealthState::Unknown));
  EXPECT_TRUE(usable(HealthState::Healthy));
  EXPECT_TRUE(usable(HealthState::Degraded));
  EXPECT_FALSE(usable(HealthState::Unhealthy));
  EXPECT_FALSE(usable(HealthState::Down));
}

TEST(PathStats, JacobsonKarels) {
  PathStats s;
  EXPECT_FALSE(s.has_rtt());
  EXPECT_DOUBLE_EQ(s.rto_ms(), 1000);
  s.on_rtt_sample(100, 0);
  EXPECT_DOUBLE_EQ(s.srtt_ms(), 100);
  EXPECT_DOUBLE_EQ(s.rttvar_ms(), 50);
  EXPECT_DOUBLE_EQ(s.rto_ms(), 300);
  s.on_rtt_sample(200, 0);
  EXPECT_DOUBLE_EQ(s.rttvar_ms(), 0.75 * 50 + 0.25 * 100);
  EXPECT_DOUBLE_EQ(s.srtt_ms(), 0.875 * 100 + 0.125 * 200);
  for (int i = 0; i < 200; ++i) s.on_rtt_sample(40, i * 100'000'000LL);
  EXPECT_NEAR(s.srtt_ms(), 40, 0.01);
  EXPECT_NEAR(s.rttvar_ms(), 0, 0.01);
  EXPECT_DOUBLE_EQ(s.rto_ms(), 200);  // clamped to the floor
}

// A standing queue of a long transfer, probed every 100 ms: for the first 10 s of it the
// base RTT and the outbound queue still see the empty path (a window is 32 samples AND
// 10 s, not 32 samples alone, which would be 3.2 s); after two windows of nothing but
// the queue it is the path.
TEST(PathStats, BaseWindowsLastTenSeconds) {
  PathStats s;
  constexpr std::int64_t kTick = 100'000'000;
  std::int64_t t = 0;
  for (int i = 0; i < 40; ++i, t += kTick) {  // idle: 20 ms, one way 10 ms (+ 5 s offset)
    s.on_rtt_sample(20, t);
    s.on_owd_sample(5'010'000'000, t);
  }
  for (int i = 0; i < 95; ++i, t += kTick) {  // 9.5 s of a 30 ms queue on the way out
    s.on_rtt_sample(50, t);
    s.on_owd_sample(5'040'000'000, t);
  }
  EXPECT_DOUBLE_EQ(s.base_rtt_ms(), 20);
  EXPECT_NEAR(s.out_queue_ms(), 30, 0.01);
  for (int i = 0; i < 300; ++i, t += kTick) {
    s.on_rtt_sample(50, t);
    s.on_owd_sample(5'040'000'000, t);
  }
  EXPECT_DOUBLE_EQ(s.base_rtt_ms(), 50);
  EXPECT_NEAR(s.out_queue_ms(), 0, 0.01);
}

TEST(PathStats, LossOverTheLastWindow) {
  PathStats s;
  EXPECT_EQ(s.loss(), 0);
  for (int i = 0; i < 10; ++i) s.on_probe_result(i % 2 == 0);
  EXPECT_DOUBLE_EQ(s.loss(), 0.5);
  for (unsigned i = 0; i < PathStats::kLossWindow; ++i) s.on_probe_result(true);
  EXPECT_EQ(s.loss(), 0);  // old losses slid out
  s.on_probe_result(false);
  EXPECT_DOUBLE_EQ(s.loss(), 1.0 / PathStats::kLossWindow);
}

TEST(PathStats, ThroughputEma) {
  PathStats s;
  s.on_bytes(1'000'000, 1.0);
  EXPECT_DOUBLE_EQ(s.throughput_bps(), 8e6);
  s.on_bytes(2'000'000, 1.0);
  EXPECT_DOUBLE_EQ(s.throughput_bps(), 0.2 * 16e6 + 0.8 * 8e6);
  s.on_bytes(5, 0);  // no interval: ignored
  EXPECT_DOUBLE_EQ(s.throughput_bps(), 0.2 * 16e6 + 0.8 * 8e6);
}

TEST(PathStats, DeliveredRateLeavesOutAppLimitedDrops) {
  PathStats s;
  s.on_delivered(2'500'000, 1.0, 2'600'000);  // 20 Mbit/s while the path was full
  EXPECT_DOUBLE_EQ(s.delivered_bps(), 20e6);
  s.on_delivered(3'000'000, 1.0, 3'100'000);  // higher: always taken
  const double full = 0.2 * 24e6 + 0.8 * 20e6;
  EXPECT_DOUBLE_EQ(s.delivered_bps(), full);
  // The tail of a transfer: little offered, little delivered. Left out.
  s.on_delivered(500'000, 1.0, 500'000);
  EXPECT_DOUBLE_EQ(s.delivered_bps(), full);
  // Lower, but the sender offered more than half the estimate: the path carries less.
  s.on_delivered(1'500'000, 1.0, 2'000'000);
  const double lower = 0.2 * 12e6 + 0.8 * full;
  EXPECT_DOUBLE_EQ(s.delivered_bps(), lower);
  // Lower app-limited samples that go on for kAppLimitedHoldS are followed.
  for (int i = 0; i < 2; ++i) {
    s.on_delivered(100'000, 1.0, 100'000);
    EXPECT_DOUBLE_EQ(s.delivered_bps(), lower) << i;
  }
  s.on_delivered(100'000, 1.0, 100'000);
  EXPECT_DOUBLE_EQ(s.delivered_bps(), 0.2 * 0.8e6 + 0.8 * lower);
  s.on_delivered(5, 0, 5);  // no interval: ignored
  EXPECT_DOUBLE_EQ(s.delivered_bps(), 0.2 * 0.8e6 + 0.8 * lower);
}

// Every packet counted: small intervals add up to kMinLossPackets before they make a
// sample; samples go into an EMA; the figure fades with its half-life while no sample
// comes (an uplink left alone for its loss is tried again).
TEST(PathStats, PacketLossFromThePeersCounts) {
  constexpr std::int64_t kS = 1'000'000'000;
  PathStats s;
  EXPECT_DOUBLE_EQ(s.packet_loss(0), 0.0);
  EXPECT_FALSE(s.on_packets(120, 128, 1 * kS));  // too few: waits
  EXPECT_DOUBLE_EQ(s.packet_loss(1 * kS), 0.0);
  EXPECT_TRUE(s.on_packets(120, 128, 1 * kS));  // 256 sent, 240 arrived
  EXPECT_DOUBLE_EQ(s.last_packet_loss(), 16.0 / 256);
  EXPECT_DOUBLE_EQ(s.packet_loss(1 * kS), PathStats::kPacketLossAlpha * (16.0 / 256));
  const double first = s.packet_loss(1 * kS);
  s.on_packets(300, 300, 1 * kS);  // a clean interval
  EXPECT_DOUBLE_EQ(s.packet_loss(1 * kS), (1 - PathStats::kPacketLossAlpha) * first);
  const double now = s.packet_loss(1 * kS);
  EXPECT_DOUBLE_EQ(s.packet_loss(1 * kS + PathStats::kPacketLossHalfLifeNs), now / 2);
  EXPECT_DOUBLE_EQ(s.packet_loss(1 * kS + 2 * PathStats::kPacketLossHalfLifeNs), now / 4);
  // A reordered packet counted after the interval that expected it: never below 0 loss.
  PathStats r;
  r.on_packets(260, 256, 0);
  EXPECT_DOUBLE_EQ(r.packet_loss(0), 0.0);
}

}  // namespace
}  // namespace triglav::dp
