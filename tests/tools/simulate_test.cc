// The in-process simulation: deterministic per seed, lossless on a clean link, and the
// failover behaviour of the real scheduler and prober on a cut link and a full outage.
#include <gtest/gtest.h>

#include <algorithm>

#include "tools/sim/sim.h"

namespace triglav::sim {
namespace {

linkem::Scenario two_links(const std::string& second_link_events) {
  return linkem::parse_scenario(R"(
name = "t"
duration = "20s"
[[links]]
name = "a"
[[links.segments]]
at = "0s"
rate = "50mbit"
delay = "10ms"
[[links]]
name = "b"
[[links.segments]]
at = "0s"
rate = "50mbit"
delay = "15ms"
)" + second_link_events, "test");
}

RunResult many(const linkem::Scenario& sc, dp::Strategy st, int seeds, double flow_pps = 50) {
  RunResult sum;
  for (int s = 1; s <= seeds; ++s) {
    SimConfig c;
    c.sched.strategy = st;
    c.flow_pps = flow_pps;
    c.seed = static_cast<std::uint64_t>(s);
    sum.add(run(sc, c));
  }
  return sum;
}

// Flows of 1000 packets a second: 38 Mbit/s each way, more than the shorter link takes
// alone at its first estimate, so striping uses both.
constexpr double kBusyPps = 1000;

// aggregate stripes every flow over both links (15 and 10 ms apart in delay): the
// receiver's reorder buffer hands every packet over, in order, and on time.
TEST(Simulate, StripedFlowsArriveInOrder) {
  const auto sc = two_links("");
  const RunResult r = many(sc, dp::Strategy::Aggregate, 3, kBusyPps);
  EXPECT_EQ(r.delivered, r.sent);
  EXPECT_EQ(r.out_of_order, 0u);
  EXPECT_EQ(r.on_time, r.sent);
  // The same flows placed whole by adaptive are never reordered either: the baseline.
  EXPECT_EQ(many(sc, dp::Strategy::Adaptive, 3).out_of_order, 0u);
}

// Both links used by one striped flow, a lossy second one: the loss costs packets, but
// gaps are given up rather than holding the flow back (most still on time).
TEST(Simulate, StripedFlowsSurviveALossyLink) {
  const auto sc = two_links("[[links.segments]]\nat = \"5s\"\nloss = \"5%\"\n");
  const RunResult r = many(sc, dp::Strategy::Aggregate, 3, kBusyPps);
  EXPECT_LT(r.delivered, r.sent);
  EXPECT_GT(static_cast<double>(r.on_time) / static_cast<double>(r.sent), 0.9);
}

TEST(Simulate, SameSeedSameResult) {
  const auto sc = two_links("[[links.segments]]\nat = \"5s\"\nloss = \"20%\"\n");
  SimConfig c;
  c.seed = 9;
  const RunResult a = run(sc, c), b = run(sc, c);
  EXPECT_EQ(a.sent, b.sent);
  EXPECT_EQ(a.delivered, b.delivered);
  EXPECT_EQ(a.on_time, b.on_time);
  EXPECT_EQ(a.disruptions_ms, b.disruptions_ms);
  c.seed = 10;
  EXPECT_NE(run(sc, c).delivered, a.delivered);
}

TEST(Simulate, CleanLinksDeliverEverythingOnTime) {
  const RunResult r = many(two_links(""), dp::Strategy::Adaptive, 3);
  // 2 directions x 4 flows x 50 packets/s x 19 s (the applications start a second in).
  EXPECT_GT(r.sent, 3u * 2 * 4 * 50 * 18);
  EXPECT_EQ(r.delivered, r.sent);
  EXPECT_EQ(r.on_time, r.sent);
  EXPECT_TRUE(r.disruptions_ms.empty());
  EXPECT_EQ(r.handshakes, 3u * 2);
  EXPECT_EQ(r.data_bytes, r.delivered_bytes);
}

TEST(Simulate, ACutLinkFailsOverWithinASecond) {
  const auto sc = two_links("[[links.segments]]\nat = \"8s\"\noutage = true\n");
  RunResult r = many(sc, dp::Strategy::Adaptive, 10);
  ASSERT_FALSE(r.disruptions_ms.empty());  // flows on the cut link lost packets ...
  // ... until the busy-interval probe (250 ms) and three timeouts moved them.
  EXPECT_LT(*std::max_element(r.disruptions_ms.begin(), r.disruptions_ms.end()), 1000.0);
  EXPECT_GT(static_cast<double>(r.delivered) / static_cast<double>(r.sent), 0.98);
  // Redundant loses nothing, at the price of a copy on each link while both were up.
  RunResult red = many(sc, dp::Strategy::Redundant, 10);
  EXPECT_TRUE(red.disruptions_ms.empty());
  EXPECT_EQ(red.delivered, red.sent);
  EXPECT_GT(static_cast<double>(red.data_bytes) / static_cast<double>(red.delivered_bytes), 1.25);
}

TEST(Simulate, AFullOutageRecoversByHandshakingAgain) {
  const auto sc = linkem::parse_scenario(R"(
name = "t"
duration = "20s"
[[links]]
name = "a"
[[links.segments]]
at = "0s"
delay = "20ms"
[[links.segments]]
at = "6s"
outage = true
[[links.segments]]
at = "10s"
outage = false
)", "test");
  const RunResult r = many(sc, dp::Strategy::Adaptive, 5);
  ASSERT_FALSE(r.disruptions_ms.empty());
  const double longest = *std::max_element(r.disruptions_ms.begin(), r.disruptions_ms.end());
  EXPECT_GE(longest, 4000.0);
  EXPECT_LT(longest, 4000.0 + 2500.0);  // Down, handshake retried every second, back
  EXPECT_GT(r.handshakes, 5u);
}

}  // namespace
}  // namespace triglav::sim
