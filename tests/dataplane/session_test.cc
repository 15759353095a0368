#include "dataplane/session.h"

#include <gtest/gtest.h>

namespace triglav::dp {
namespace {

TEST(Qsbr, NothingIsFreedWhileAWorkerMayHoldIt) {
  Qsbr q(2);
  int freed = 0;
  q.online(0);
  q.online(1);
  q.retire([&] { ++freed; });
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
  q.offline(0);
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
  Session s;
  s.local_index = 7;
  s.peer_inner_ipv4_be = 0x0255000a;
  auto next = std::make_unique<Snapshot>();
  next->by_index.emplace(7, &s);
  next->by_inner_ipv4.emplace(s.peer_inner_ipv4_be, &s);
  h.publish(std::move(next));
  EXPECT_NE(h.load(), first);
  EXPECT_EQ(h.load()->find_index(7), &s);
  EXPECT_EQ(h.load()->find_index(8), nullptr);
  EXPECT_EQ(h.load()->route_ipv4(0x0255000a), &s);
  EXPECT_EQ(h.load()->route_ipv4(0x0355000a), nullptr);
  q.quiescent(0);
  EXPECT_EQ(q.reclaim(), 0u);
}

TEST(Snapshot, ClientDefaultSessionCatchesEveryDestination) {
  Snapshot snap;
  Session s;
  snap.default_session = &s;
  EXPECT_EQ(snap.route_ipv4(0x01020304), &s);
}

}  // namespace
}  // namespace triglav::dp
