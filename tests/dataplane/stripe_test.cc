// The striper: each packet to the uplink where it is predicted to arrive first, shares
// following the delivery rates, the lower delay preferred while queues are short, and an
// uplink past its in-flight budget left alone while another is within its own.
#include <gtest/gtest.h>

#include <array>

#include "dataplane/stripe.h"

namespace triglav::dp {
namespace {

constexpr std::int64_t kMs = 1'000'000;

UplinkView view(std::uint8_t id, double srtt_ms, double mbit, double base_ms = -1) {
  UplinkView v;
  v.id = id;
  v.state = HealthState::Healthy;
  v.srtt_ms = srtt_ms;
  v.base_rtt_ms = base_ms < 0 ? srtt_ms : base_ms;
  v.throughput_bps = mbit * 1e6;
  return v;
}

// Sends `packets` of 1400 bytes at `mbit` offered load; returns how many went to each uplink.
std::array<int, 2> run(Striper& s, int packets, double mbit) {
  std::array<int, 2> n{};
  const double gap_ns = 1400 * 8 / (mbit * 1e6) * 1e9;
  for (int i = 0; i < packets; ++i) {
    const int u = s.pick(0b11, 1400, static_cast<std::int64_t>(i * gap_ns));
    EXPECT_TRUE(u == 0 || u == 1);
    ++n[static_cast<std::size_t>(u)];
  }
  return n;
}

// Both uplinks busy (RTT above base, so their rates count as measured): the shares
// follow the rates, 50 against 30.
TEST(Striper, SharesFollowTheDeliveryRates) {
  Striper s;
  const std::array<UplinkView, 2> v{view(0, 30, 50, 10), view(1, 30, 30, 10)};
  s.update(v);
  const auto n = run(s, 20000, 100);  // offered more than both carry
  const double share0 = n[0] / 20000.0;
  EXPECT_NEAR(share0, 50.0 / 80.0, 0.03) << n[0] << " / " << n[1];
}

// Light load: every packet takes the uplink with the shorter delay; as load grows past
// what it carries (a queue shows on it), the other takes the rest.
TEST(Striper, ShorterDelayFirstThenTheOther) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 40, 50), view(1, 10, 50)};
  s.update(v);
  auto n = run(s, 2000, 5);
  EXPECT_EQ(n[1], 2000);
  v = {view(0, 46, 50, 40), view(1, 16, 50, 10)};  // both queueing: rates as delivered
  Striper busy;
  busy.update(v);
  n = run(busy, 20000, 90);  // a little below what both carry
  EXPECT_GT(n[0], 4000);
  EXPECT_GT(n[1], n[0]);
}

// A flow starting while no uplink shows a queue stays on the uplink of the clearly
// shortest delay, whatever its measured (light-load) rate, until a queue shows there;
// from then on the rates share it, and the rate it delivered with a queue is its credit
// when the queue is gone.
TEST(Striper, StartingFlowStaysOnTheFastestUntilItQueues) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 80, 0.5), view(1, 16, 0.5)};  // both idle, no queue
  s.update(v);
  auto n = run(s, 20000, 300);  // a burst far above what either delivered so far
  EXPECT_EQ(n[1], 20000);
  v[1] = view(1, 40, 300, 16);  // now queueing at 300 Mbit/s
  v[0] = view(0, 80, 0.5, 80);
  s.update(v);
  n = run(s, 20000, 330);
  EXPECT_GT(n[0], 0);
  EXPECT_GT(n[1], 10 * n[0]);
  // The queue drained, the load went: the credit stays at what it carried.
  v[1] = view(1, 16, 2, 16);
  s.update(v);
  EXPECT_NEAR(s.arrival_ns(1, 0, 20'000 * kMs), 8 * kMs, 1000);  // the model's queue drained
  EXPECT_LT(s.arrival_ns(1, 300'000, 20'000 * kMs), 8 * kMs + 300'000 * 8 / 300e6 * 1e9 * 1.01);
  // Delays alike: spilling costs nothing, the model decides from the start.
  Striper alike;
  const std::array<UplinkView, 2> w{view(0, 12, 0.5), view(1, 10, 0.5)};
  alike.update(w);
  n = run(alike, 20000, 300);
  EXPECT_GT(n[0], 5000);
  // The shorter delay losing 5 % (10 ms of expected cost) is the farther: the flow
  // starts on the other.
  Striper lossy;
  std::array<UplinkView, 2> x{view(0, 10, 0.5), view(1, 20, 0.5)};
  x[0].packet_loss = 0.05;
  lossy.update(x);
  n = run(lossy, 2000, 300);
  EXPECT_EQ(n[1], 2000);
}

// Loaded for a few reports without a queue (a sender pacing at what it measured): the
// delivered rate counts as its capacity, and the model shares the load again.
TEST(Striper, LoadWithoutQueueBecomesTheCapacity) {
  Striper s;
  const std::array<UplinkView, 2> v{view(0, 80, 0.5), view(1, 16, 40)};
  for (int i = 0; i < Striper::kClearReports; ++i) s.update(v);
  const auto n = run(s, 20000, 200);  // far above 40 Mbit/s x kProbeGain
  EXPECT_GT(n[0], 1000);
}

// The predicted arrival adds the queue ahead at the uplink's rate.
TEST(Striper, ArrivalIsDelayPlusQueue) {
  Striper s;
  const std::array<UplinkView, 1> v{view(0, 20, 8, 5)};  // queueing: 8 Mbit/s as measured = 1 byte/us
  s.update(v);
  EXPECT_NEAR(s.arrival_ns(0, 1000, 0), 10 * kMs + 1000 * 1000, 1000);
  for (int i = 0; i < 10; ++i) s.pick(1, 1000, 0);
  EXPECT_NEAR(s.arrival_ns(0, 1000, 0), 10 * kMs + 11000 * 1000, 1000);
  EXPECT_NEAR(s.arrival_ns(0, 1000, 5 * kMs), 10 * kMs + 6000 * 1000, 1000);  // 5 ms drained 5000 bytes
}

// An uplink past its budget (about a bandwidth-delay product) takes nothing while the
// other is within its own, even where it would still be predicted first; once both are
// past theirs, the earlier arrival wins again.
TEST(Striper, BudgetCapsWhatAnUplinkHolds) {
  Striper s;
  const std::array<UplinkView, 2> v{view(0, 2, 100, 1), view(1, 400, 1, 100)};
  s.update(v);
  int first_on_1 = -1;
  for (int i = 0; i < 5000 && first_on_1 < 0; ++i)
    if (s.pick(0b11, 1400, 0) == 1) first_on_1 = i;  // a burst at one instant
  ASSERT_GE(first_on_1, 0);
  // Uplink 0's budget: its rate (100 Mbit/s, credited more: its queue, 1 ms of RTT above
  // the base, is a fifth of what counts as queueing, so 4/5 of the probing gain) x
  // (2 ms + 20 ms), which it had filled.
  const double budget0 = 100e6 * (1 + (Striper::kProbeGain - 1) * 0.8) / 8 * 0.022;
  EXPECT_GT(s.queued(0), budget0 - 1400);
  EXPECT_LE(s.queued(0), budget0 + 1400);
  EXPECT_LT(s.arrival_ns(0, 1400, 0), s.arrival_ns(1, 1400, 0) - 1400) << "uplink 0 would still have been first";
  int on_0 = 0;
  for (int i = 0; i < 1000; ++i) on_0 += s.pick(0b11, 1400, 0) == 0;
  EXPECT_GT(on_0, 900);  // uplink 1 past its budget too (52 kB): the earlier arrival again
}

// An uplink without an RTT yet counts as slow as the slowest known; one not allowed
// takes nothing; nothing allowed is -1.
TEST(Striper, UnknownAndDisallowedUplinks) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 30, 10), view(1, -1, 10)};
  v[1].base_rtt_ms = -1;
  s.update(v);
  EXPECT_NEAR(s.arrival_ns(1, 0, 0), s.arrival_ns(0, 0, 0), 1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.pick(0b10, 1400, i * kMs), 1);
  EXPECT_EQ(s.pick(0, 1400, 0), -1);
}

// An uplink whose latest probe went unanswered takes nothing while another answers,
// and still carries everything when it is the only one.
TEST(Striper, SuspectUplinkIsLeftAtOnce) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 10, 50), view(1, 10, 50)};
  v[1].suspect = true;
  s.update(v);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.pick(0b11, 1400, i * kMs), 0);
  EXPECT_EQ(s.pick(0b10, 1400, 0), 1);
}

// An uplink that loses packets without a queue takes nothing while another is clean,
// whatever their rates; when every allowed one is lossy, they still carry the traffic.
TEST(Striper, LossyUplinkIsLeft) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 10, 20), view(1, 10, 80)};
  v[1].lossy = true;
  s.update(v);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.pick(0b11, 1400, i * kMs), 0);
  EXPECT_EQ(s.pick(0b10, 1400, 0), 1);
  v[0].lossy = true;
  v[1].srtt_ms = 20;  // queueing: the model shares the load
  s.update(v);
  const auto n = run(s, 1000, 150);  // more than either carries
  EXPECT_GT(n[0], 0);
  EXPECT_GT(n[1], 0);
  // Suspect counts first: a lossy uplink that answers beats a silent one.
  v[0].lossy = false;
  v[0].suspect = true;
  s.update(v);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.pick(0b11, 1400, (2000 + i) * kMs), 1);
}

// An uplink near its base RTT is credited with more than it delivered (it may carry
// more); a queueing one with what it delivered.
TEST(Striper, IdleCapacityIsProbed) {
  Striper s;
  const std::array<UplinkView, 2> v{view(0, 10, 40, 10), view(1, 30, 40, 10)};
  s.update(v);
  const auto n = run(s, 20000, 200);
  EXPECT_GT(n[0], n[1]);  // equal measured rates, but uplink 0 shows no queue
}


// The probing credit falls with the queue an uplink shows, not at a step: two uplinks
// delivering the same, one with an empty queue (the full kProbeGain), one halfway to
// what counts as queueing (half of it), share in proportion to 1.25 : 1.125.
TEST(Striper, ProbingCreditFallsWithTheQueue) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 10, 40, 10), view(1, 12.5, 40, 10)};
  v[0].out_queue_ms = 0;
  v[1].out_queue_ms = 2.5;  // of 5 ms
  EXPECT_DOUBLE_EQ(queue_fill(v[1]), 0.5);
  EXPECT_FALSE(queueing(v[1]));
  s.update(v);
  const auto n = run(s, 20000, 200);
  const double g0 = Striper::kProbeGain, g1 = 1 + (Striper::kProbeGain - 1) / 2;
  EXPECT_NEAR(n[0] / 20000.0, g0 / (g0 + g1), 0.01) << n[0] << " / " << n[1];  // a step: 0.500
  v[1].out_queue_ms = 6;  // queueing: as delivered
  EXPECT_TRUE(queueing(v[1]));
  Striper t;
  t.update(v);
  const auto m = run(t, 20000, 200);
  EXPECT_NEAR(m[0] / 20000.0, g0 / (g0 + 1), 0.01) << m[0] << " / " << m[1];
}

// A lossy uplink costs its expected loss: at a light load every packet takes the
// lossless one of two alike; under load the lossy one takes a packet once the other's
// queue is loss x kLossPenaltyNs longer (2 % of 200 ms: 4 ms, 31 kB at the 62.5 Mbit/s
// an idle 50 Mbit/s uplink is credited).
TEST(Striper, PacketLossCountsAsDelay) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 10, 50, 10), view(1, 10, 50, 10)};
  v[0].out_queue_ms = v[1].out_queue_ms = 0;
  v[1].packet_loss = 0.02;
  s.update(v);
  EXPECT_NEAR(s.arrival_ns(1, 0, 0) - s.arrival_ns(0, 0, 0), 0.02 * Striper::kLossPenaltyNs, 1);
  auto n = run(s, 2000, 5);
  EXPECT_EQ(n[1], 0);
  Striper busy;
  busy.update(v);
  int first_on_1 = -1;
  for (int i = 0; i < 1000 && first_on_1 < 0; ++i)
    if (busy.pick(0b11, 1400, 0) == 1) first_on_1 = i;  // a burst at one instant
  const double rate0 = 50e6 * Striper::kProbeGain / 8;  // bytes/s: no queue, the full credit
  EXPECT_NEAR(busy.queued(0), rate0 * 0.004, 1400);
  EXPECT_GT(first_on_1, 0);
}

// With loss repair, a loss costs the repair's wait rather than kLossPenaltyNs, and an
// uplink marked lossy keeps its share while it loses less than kRepairLossLimit.
TEST(Striper, RepairMakesALossCheapAndKeepsALossyUplink) {
  Striper s;
  std::array<UplinkView, 2> v{view(0, 10, 20), view(1, 10, 80)};
  v[1].lossy = true;
  v[1].packet_loss = 0.02;
  const std::int64_t repair = 30 * kMs;
  s.update(v, repair);
  EXPECT_NEAR(s.arrival_ns(1, 0, 0) - s.arrival_ns(0, 0, 0), 0.02 * static_cast<double>(repair), 1);
  const auto n = run(s, 1000, 150);
  EXPECT_GT(n[1], n[0]);  // the faster one, lossy or not
  v[1].packet_loss = kRepairLossLimit;
  s.update(v, repair);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.pick(0b11, 1400, (5000 + i) * kMs), 0);
  EXPECT_FALSE(avoid_lossy(v[0], true));
  EXPECT_TRUE(avoid_lossy(v[1], true));
  v[1].packet_loss = kRepairLossLimit / 2;
  EXPECT_FALSE(avoid_lossy(v[1], true));
  EXPECT_TRUE(avoid_lossy(v[1], false));
}

}  // namespace
}  // namespace triglav::dp
