#include "dataplane/qsbr.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "dataplane/snapshot.h"  // the grace period starts when a snapshot is published

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

}  // namespace
}  // namespace triglav::dp
