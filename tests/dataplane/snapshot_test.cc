#include "dataplane/snapshot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace triglav::dp {
namespace {

TEST(Snapshot, PublishSwapsAndRetiresTheOldOne) {
  Qsbr q(1);
  SnapshotHolder h(q);
  q.online(0);
  const Snapshot* first = h.load();
  Group g;
  g.inner_ipv4_be = 0x0255000a;
  Session s;
  s.local_index = 7;
  s.uplink = 2;
  s.group = &g;
  std::array<Session*, kMaxUplinks> ups{};
  ups[2] = &s;
  auto next = std::make_unique<Snapshot>();
  next->by_index.emplace(7, &s);
  auto route = make_route(&g, ups, {}, SchedulerConfig{}, 1);
  next->by_inner_ipv4.emplace(g.inner_ipv4_be, route.get());
  const GroupRoute* r = route.get();
  next->routes.push_back(std::move(route));
  h.publish(std::move(next));
  EXPECT_NE(h.load(), first);
  EXPECT_EQ(h.load()->find_index(7), &s);
  EXPECT_EQ(h.load()->find_index(8), nullptr);
  EXPECT_EQ(h.load()->route_ipv4(0x0255000a), r);
  EXPECT_EQ(h.load()->route_ipv4(0x0355000a), nullptr);
  q.quiescent(0);
  EXPECT_EQ(q.reclaim(), 0u);
}

TEST(Snapshot, RouteMarksAbsentUplinksDown) {
  Group g;
  Session a, b;
  std::array<Session*, kMaxUplinks> ups{};
  ups[0] = &a;
  ups[3] = &b;
  std::array<UplinkView, kMaxUplinks> views{};
  views[3].weight = 5;
  auto r = make_route(&g, ups, views, SchedulerConfig{}, 9);
  EXPECT_EQ(r->n_views, 4u);
  EXPECT_EQ(r->views[0].state, HealthState::Unknown);
  EXPECT_EQ(r->views[1].state, HealthState::Down);
  EXPECT_EQ(r->views[2].state, HealthState::Down);
  EXPECT_EQ(r->views[3].id, 3);
  EXPECT_EQ(r->views[3].weight, 5);
  EXPECT_EQ(r->version, 9u);
  EXPECT_EQ(r->striped, 0b1001u);
  EXPECT_EQ(g.live_uplinks.load(), 0b1001u);
}

// What striping sends on, as the peer is told: the live uplinks without the suspect
// ones, then without the lossy ones, each only while another remains.
TEST(Snapshot, StripedUplinksLeaveSuspectThenLossy) {
  std::array<UplinkView, 4> v{};
  v[2].state = HealthState::Down;
  EXPECT_EQ(striped_uplinks(v), 0b1011u);
  v[1].lossy = true;
  EXPECT_EQ(striped_uplinks(v), 0b1001u);
  v[0].suspect = true;
  EXPECT_EQ(striped_uplinks(v), 0b1000u);
  v[3].lossy = true;  // every answering one is lossy: they all stay
  EXPECT_EQ(striped_uplinks(v), 0b1010u);
  v[1].suspect = v[3].suspect = true;  // every one suspect: all live ones, less the lossy
  EXPECT_EQ(striped_uplinks(v), 0b0001u);
  v[0].lossy = true;
  EXPECT_EQ(striped_uplinks(v), 0b1011u);
  // With repair, a lossy uplink stays while it loses less than kRepairLossLimit.
  v[0].suspect = v[1].suspect = v[3].suspect = false;
  v[0].packet_loss = 0.02;
  v[1].packet_loss = v[3].packet_loss = kRepairLossLimit;
  EXPECT_EQ(striped_uplinks(v, true), 0b0001u);
  EXPECT_EQ(striped_uplinks(v, false), 0b1011u);
}

// The wait for a repair: about the least smoothed RTT, with a quarter more and the
// slack; within the reorder bounds.
TEST(Snapshot, RepairWaitFollowsTheLeastRtt) {
  std::array<UplinkView, kMaxUplinks> v{};
  for (auto& x : v) x.state = HealthState::Down;
  EXPECT_EQ(repair_wait_ns(v), static_cast<std::int64_t>(kReorderJitterMs * 1e6));  // nothing known
  v[0].state = v[1].state = HealthState::Healthy;
  v[0].srtt_ms = 40;
  v[1].srtt_ms = 12;
  EXPECT_EQ(repair_wait_ns(v), static_cast<std::int64_t>((12 * 1.25 + kRepairSlackMs) * 1e6));
  v[1].state = HealthState::Down;
  EXPECT_EQ(repair_wait_ns(v), static_cast<std::int64_t>((40 * 1.25 + kRepairSlackMs) * 1e6));
  v[0].srtt_ms = 1000;
  EXPECT_EQ(repair_wait_ns(v), static_cast<std::int64_t>(kMaxReorderWaitMs * 1e6));
}

// A route asks for repairs when its peer takes them: the Group's wait is set, else 0.
TEST(Snapshot, RouteSetsTheRepairWaitWhenThePeerTakesRepairs) {
  Group g;
  Session a;
  std::array<Session*, kMaxUplinks> ups{};
  ups[0] = &a;
  std::array<UplinkView, kMaxUplinks> views{};
  views[0].srtt_ms = 8;
  auto r = make_route(&g, ups, views, SchedulerConfig{}, 1);
  EXPECT_EQ(r->repair_ns, 0);
  EXPECT_EQ(g.repair_wait_ns.load(), 0);
  a.peer_takes_repair = true;
  r = make_route(&g, ups, views, SchedulerConfig{}, 2);
  EXPECT_EQ(r->repair_ns, repair_wait_ns(r->views));
  EXPECT_EQ(g.repair_wait_ns.load(), r->repair_ns);
  EXPECT_GT(r->repair_ns, 0);
}

TEST(Snapshot, ClientDefaultRouteCatchesEveryDestination) {
  Snapshot snap;
  GroupRoute r;
  snap.default_route = &r;
  EXPECT_EQ(snap.route_ipv4(0x01020304), &r);
}

// Benchmark packets: whole IPv4 UDP packets the receiver's checks accept, with a valid
// header checksum, one UDP flow per stream, and no bytes left over from the buffer.

// The server's client_routes: the longest prefix that holds the address wins, whatever
// the order they were added in and however many there are.
Subnet subnet(std::uint32_t net_host, int len) {
  const std::uint32_t mask = len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
  return {__builtin_bswap32(net_host & mask), __builtin_bswap32(mask)};
}

std::uint32_t be(std::uint32_t host) { return __builtin_bswap32(host); }

TEST(SubnetTable, LongestPrefixWins) {
  GroupRoute a, b, c, d;
  SubnetTable t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(be(0xc0a80101)), nullptr);
  t.add(subnet(0xc0a80000, 16), &a);  // 192.168.0.0/16
  t.add(subnet(0xc0a80100, 24), &b);  // 192.168.1.0/24
  t.add(subnet(0xc0a80180, 25), &c);  // 192.168.1.128/25
  t.add(subnet(0xc0a80101, 32), &d);  // 192.168.1.1/32
  t.add(subnet(0xc0a80100, 24), &a);  // the same prefix again: the first stays
  EXPECT_EQ(t.find(be(0xc0a80101)), &d);
  EXPECT_EQ(t.find(be(0xc0a80102)), &b);
  EXPECT_EQ(t.find(be(0xc0a801ff)), &c);
  EXPECT_EQ(t.find(be(0xc0a80201)), &a);
  EXPECT_EQ(t.find(be(0xc0a90101)), nullptr);
  t.add(subnet(0, 0), &b);  // a default route: anything else
  EXPECT_EQ(t.find(be(0x0a000001)), &b);
  EXPECT_EQ(t.find(be(0xc0a80101)), &d);
}

TEST(SubnetTable, ManyPrefixesOneProbePerLength) {
  std::vector<GroupRoute> routes(20'000);
  SubnetTable t;
  for (std::uint32_t i = 0; i < 10'000; ++i) {  // 10.x.y.0/24 and 172.16.x.y/32 for 10,000 clients
    t.add(subnet(0x0a000000 | i << 8, 24), &routes[i]);
    t.add(subnet(0xac100000 | i, 32), &routes[10'000 + i]);
  }
  for (std::uint32_t i = 0; i < 10'000; i += 997) {
    EXPECT_EQ(t.find(be(0x0a000000 | i << 8 | 77)), &routes[i]);
    EXPECT_EQ(t.find(be(0xac100000 | i)), &routes[10'000 + i]);
  }
  EXPECT_EQ(t.find(be(0x0b000001)), nullptr);
}

}  // namespace
}  // namespace triglav::dp
