#include "dataplane/flow.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <vector>

#include "dataplane/scheduler.h"
#include "tests/support/packets.h"
#include "tests/support/uplinks.h"

namespace triglav::dp {
namespace {

using test::make;
using test::up;

const auto H = HealthState::Healthy;

// A TCP header-only packet from src:sport to 10.0.0.0:80.
std::vector<std::uint8_t> tcp4(std::uint32_t src, std::uint16_t sport) {
  std::vector<std::uint8_t> p(40, 0);
  test::write_ipv4(p.data(), p.size(), {.src_be = src, .dst_be = 10, .proto = 6});
  p[20] = static_cast<std::uint8_t>(sport >> 8);
  p[21] = static_cast<std::uint8_t>(sport);
  p[23] = 80;
  return p;
}

TEST(FlowHash, FiveTupleDecides) {
  auto a = tcp4(1, 1000), b = tcp4(1, 1001), c = tcp4(2, 1000);
  EXPECT_EQ(flow_hash(a.data(), a.size()), flow_hash(a.data(), a.size()));
  EXPECT_NE(flow_hash(a.data(), a.size()), flow_hash(b.data(), b.size()));
  EXPECT_NE(flow_hash(a.data(), a.size()), flow_hash(c.data(), c.size()));
  a[8] = 3;  // TTL is not part of the flow
  EXPECT_EQ(flow_hash(a.data(), a.size()), flow_hash(tcp4(1, 1000).data(), 40));
  auto frag = tcp4(1, 1000);
  frag[7] = 10;  // a later fragment has no ports: hashed without them
  auto frag2 = tcp4(1, 2000);
  frag2[7] = 10;
  EXPECT_EQ(flow_hash(frag.data(), frag.size()), flow_hash(frag2.data(), frag2.size()));
  std::uint8_t junk[3] = {0x45, 0, 0};
  EXPECT_EQ(flow_hash(junk, 3), 1u);
  std::vector<std::uint8_t> v6(60, 0);
  v6[0] = 0x60;
  v6[6] = 17;
  v6[40] = 1;
  const auto h6 = flow_hash(v6.data(), v6.size());
  v6[41] = 1;
  EXPECT_NE(h6, flow_hash(v6.data(), v6.size()));
}

TEST(FlowTable, FlowsStickUntilTheirUplinkFails) {
  std::vector<UplinkView> two{up(0, H, 10), up(1, H, 10)};
  SchedulerConfig c;
  c.strategy = Strategy::WeightedRoundRobin;
  Scheduler s(c);
  s.update(two, 0);
  FlowTable t(1024);
  std::map<std::uint64_t, UplinkMask> first;
  for (std::uint64_t f = 1; f <= 100; ++f) first[f] = t.route(f * 7919, 0, s);
  EXPECT_EQ(t.size(), 100u);
  for (int round = 0; round < 3; ++round)  // round robin would alternate; the table does not
    for (std::uint64_t f = 1; f <= 100; ++f) EXPECT_EQ(t.route(f * 7919, 1, s), first[f]);
  two[0].state = HealthState::Unhealthy;
  s.update(two, 2);
  for (std::uint64_t f = 1; f <= 100; ++f) EXPECT_EQ(t.route(f * 7919, 3, s), 0b10u);
  EXPECT_GT(t.moved(), 0u);
  two[0].state = H;  // recovery does not move flows back (no reordering)
  s.update(two, 4);
  for (std::uint64_t f = 1; f <= 100; ++f) EXPECT_EQ(t.route(f * 7919, 5, s), 0b10u);
  // A flow leaves a Degraded uplink (three failed probes) while a Healthy one is left.
  two[1].state = HealthState::Degraded;
  s.update(two, 6);
  for (std::uint64_t f = 1; f <= 100; ++f) EXPECT_EQ(t.route(f * 7919, 7, s), 0b01u);
  two[1].state = H;
  s.update(two, 8);
  for (std::uint64_t f = 1; f <= 100; ++f) EXPECT_EQ(t.route(f * 7919, 9, s), 0b01u);
}

TEST(FlowTable, FullTableEvictsTheOldest) {
  Scheduler s = make(Strategy::Adaptive, {up(0, H, 10)});
  FlowTable t(8);
  for (std::uint64_t f = 1; f <= 100; ++f) EXPECT_EQ(t.route(f, static_cast<std::int64_t>(f), s), 1u);
  EXPECT_LE(t.size(), 8u);
}

}  // namespace
}  // namespace triglav::dp
