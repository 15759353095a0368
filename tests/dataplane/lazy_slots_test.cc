// Per-sender and per-worker state made only when first used: a slot is made once
// however many threads ask at once, and a session or a group holds only what the senders
// and workers that exist need (the sizes docs/PERFORMANCE.md quotes).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "dataplane/group.h"
#include "dataplane/lazy_slots.h"
#include "dataplane/session.h"

namespace triglav::dp {
namespace {

TEST(LazySlots, MadeOnFirstUseOnly) {
  LazySlots<ReplayWindow, 16> s;
  EXPECT_EQ(s.made(), 0u);
  EXPECT_EQ(s.find(3), nullptr);
  ReplayWindow* w = s.get(3);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(s.get(3), w);
  EXPECT_EQ(s.find(3), w);
  EXPECT_EQ(s.made(), 1u);
  EXPECT_EQ(s.bytes(), sizeof(ReplayWindow));
  EXPECT_TRUE(w->check_and_update(5));
  EXPECT_FALSE(s.get(3)->check_and_update(5)) << "the same window, not a new one";
  int seen = 0;
  s.for_each([&seen](const ReplayWindow&) { ++seen; });
  EXPECT_EQ(seen, 1);
}

TEST(LazySlots, ThreadsRacingForOneSlotGetTheSameState) {
  for (int round = 0; round < 20; ++round) {
    LazySlots<DedupWindow, 16> s;
    std::atomic<int> go{0};
    std::vector<DedupWindow*> got(4);
    std::vector<std::thread> t;
    for (int i = 0; i < 4; ++i)
      t.emplace_back([&, i] {
        go.fetch_add(1);
        while (go.load() < 4) std::this_thread::yield();
        got[i] = s.get(7);
      });
    for (auto& x : t) x.join();
    for (DedupWindow* p : got) EXPECT_EQ(p, got[0]);
    EXPECT_EQ(s.made(), 1u);
  }
}

// One uplink's session between ends of 2 workers each: this side's 2 workers and its
// control thread seal on it, the peer's 2 workers and control thread send on it.
TEST(StateSize, AnUplinkSessionHoldsOnlyItsSendersState) {
  Session s;
  for (unsigned sender : {0u, 1u, kControlSender}) {
    ASSERT_NE(s.tx.get(sender), nullptr);
    ASSERT_NE(s.rx_windows.get(sender), nullptr);
  }
  const std::size_t bytes = sizeof(Session) + s.tx.bytes() + s.rx_windows.bytes();
  std::printf("uplink session: %zu bytes (%zu fixed, %zu sender state, %zu replay windows)\n", bytes,
              sizeof(Session), s.tx.bytes(), s.rx_windows.bytes());
  EXPECT_LE(bytes, 4096u);
}

// One client of a server with 2 workers, both sending to it, and Data from the client's
// 2 workers.
TEST(StateSize, AClientsGroupHoldsOnlyItsWorkersState) {
  Group g;
  for (unsigned w : {0u, 1u}) {
    ASSERT_NE(g.workers.get(w), nullptr);
    ASSERT_NE(g.dedup.get(w), nullptr);
  }
  const std::size_t bytes = sizeof(Group) + g.workers.bytes() + g.dedup.bytes();
  std::printf("client group: %zu bytes (%zu fixed, %zu schedulers, %zu duplicate windows)\n", bytes, sizeof(Group),
              g.workers.bytes(), g.dedup.bytes());
  EXPECT_LE(bytes, 10240u);
}

}  // namespace
}  // namespace triglav::dp
