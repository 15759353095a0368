#include "dataplane/session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace triglav::dp {
namespace {

TEST(Qsbr, NothingIsFreedWhileAWorkerMayHoldIt) {
  Qsbr q(2);
  int freed = 0;
  q.online(0);
  q.online(1);
  q.retire([&] { ++freed; });
  q.commit();
  EXPECT_EQ(q.reclaim(), 1u);  // both workers may still hold the old pointer
  q.quiescent(0);
  EXPECT_EQ(q.reclaim(), 1u);  // worker 1 has not passed a quiescent point
  EXPECT_EQ(freed, 0);
  q.quiescent(1);
  EXPECT_EQ(q.reclaim(), 0u);
  EXPECT_EQ(freed, 1);
}

TEST(Qsbr, OfflineWorkersHoldNothing) {
  Qsbr q(2);
  int freed = 0;
  q.online(0);
  q.offline(1);
  q.retire([&] { ++freed; });
  q.commit();
  q.offline(0);
  EXPECT_EQ(q.reclaim(), 0u);
  EXPECT_EQ(freed, 1);
}

TEST(Qsbr, NothingRetiredIsFreedBeforeTheSnapshotWithoutItIsPublished) {
  // The control thread retires a session, then publishes the snapshot without it. A
  // worker passing a quiescent point in between may load the old snapshot again, so
  // the session's grace period may only start at the publish.
  Qsbr q(1);
  SnapshotHolder h(q);
  int freed = 0;
  q.online(0);
  q.retire([&] { ++freed; });
  q.quiescent(0);  // ... and then the worker loads h.load(): still the old snapshot
  EXPECT_EQ(q.reclaim(), 0u);  // only committed deleters count
  EXPECT_EQ(freed, 0);
  h.publish(std::make_unique<Snapshot>());  // commits: the session and the old snapshot
  EXPECT_EQ(q.reclaim(), 2u);  // the worker may hold either until its next quiescent point
  EXPECT_EQ(freed, 0);
  q.quiescent(0);
  EXPECT_EQ(q.reclaim(), 0u);
  EXPECT_EQ(freed, 1);
}

TEST(Qsbr, DrainRunsEverything) {
  Qsbr q(1);
  int freed = 0;
  q.online(0);
  q.retire([&] { ++freed; });
  q.retire([&] { ++freed; });
  q.drain();
  EXPECT_EQ(freed, 2);
}

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
}

TEST(Snapshot, ClientDefaultRouteCatchesEveryDestination) {
  Snapshot snap;
  GroupRoute r;
  snap.default_route = &r;
  EXPECT_EQ(snap.route_ipv4(0x01020304), &r);
}

// Benchmark packets: whole IPv4 UDP packets the receiver's checks accept, with a valid
// header checksum, one UDP flow per stream, and no bytes left over from the buffer.
TEST(Generator, WritesValidPacketsOneFlowPerStream) {
  Generator g{3, 0x0255000a, 0x0155000a, 1420};
  std::vector<std::uint8_t> buf(2048, 0xee);
  for (unsigned n = 0; n < 6; ++n) {
    std::fill(buf.begin(), buf.end(), 0xee);
    const std::size_t len = write_generated(buf.data(), buf.size(), g, n);
    ASSERT_EQ(len, 1420u);
    EXPECT_EQ(inner_packet_length(buf.data(), len), 1420u);
    std::uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += std::uint32_t{buf[i]} << 8 | buf[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    EXPECT_EQ(sum, 0xffffu) << "IPv4 header checksum";
    EXPECT_EQ(buf[9], 17);
    EXPECT_EQ(load_le32(buf.data() + 12), 0x0255000au);
    EXPECT_EQ((buf[20] << 8 | buf[21]), 40000 + static_cast<int>(n % 3)) << "stream by source port";
    EXPECT_EQ((buf[24] << 8 | buf[25]), 1400) << "UDP length";
    EXPECT_TRUE(std::all_of(buf.begin() + 28, buf.begin() + 1420, [](std::uint8_t b) { return b == 0; }));
  }
  g.len = 5000;  // larger than the room: clamped
  EXPECT_EQ(write_generated(buf.data(), 1500, g, 0), 1500u);
}

}  // namespace
}  // namespace triglav::dp
