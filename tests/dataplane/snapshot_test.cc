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
}

TEST(Snapshot, ClientDefaultRouteCatchesEveryDestination) {
  Snapshot snap;
  GroupRoute r;
  snap.default_route = &r;
  EXPECT_EQ(snap.route_ipv4(0x01020304), &r);
}

// Benchmark packets: whole IPv4 UDP packets the receiver's checks accept, with a valid
// header checksum, one UDP flow per stream, and no bytes left over from the buffer.

}  // namespace
}  // namespace triglav::dp
