#include "dataplane/replay_window.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace triglav::dp {
namespace {

TEST(ReplayWindow, InOrderAndDuplicates) {
  ReplayWindow w;
  for (std::uint64_t c = 0; c < 10000; ++c) {
    ASSERT_TRUE(w.check_and_update(c)) << c;
    ASSERT_FALSE(w.check_and_update(c)) << c;
  }
}

TEST(ReplayWindow, ReorderingInsideTheWindowIsAccepted) {
  ReplayWindow w;
  ASSERT_TRUE(w.check_and_update(5000));
  // Everything up to kWindow behind the top is still new, exactly once.
  for (std::uint64_t c = 5000 - ReplayWindow::kWindow + 1; c < 5000; ++c) {
    ASSERT_TRUE(w.check_and_update(c)) << c;
    ASSERT_FALSE(w.check_and_update(c)) << c;
  }
  EXPECT_FALSE(w.check_and_update(5000 - ReplayWindow::kWindow));
  EXPECT_FALSE(w.check_and_update(0));
}

TEST(ReplayWindow, AtLeast2048PacketsOfReordering) { EXPECT_GE(ReplayWindow::kWindow, 2048u); }

struct Step {
  std::uint64_t counter;
  bool accepted;
};

TEST(ReplayWindow, Table) {
  const Step steps[] = {
      {0, true},     {0, false},     {1, true},      {3, true},     {2, true},
      {3, false},    {64, true},     {63, true},     {64, false},   {200000, true},
      {199999, true}, {64, false},   {200000 - ReplayWindow::kWindow, false},
      {200000 - ReplayWindow::kWindow + 1, true},    {200001, true}, {199999, false},
  };
  ReplayWindow w;
  for (const auto& s : steps) EXPECT_EQ(w.check_and_update(s.counter), s.accepted) << s.counter;
}

TEST(ReplayWindow, BigJumpClearsStaleBits) {
  ReplayWindow w;
  for (std::uint64_t c = 0; c < 32 * ReplayWindow::kWords; ++c) ASSERT_TRUE(w.check_and_update(c));
  // Jump far ahead: words taken over by newer blocks must not remember old counters.
  const std::uint64_t base = 1'000'000 * 32;
  ASSERT_TRUE(w.check_and_update(base + 32 * ReplayWindow::kWords));
  for (std::uint64_t c = base + 33; c < base + 32 * ReplayWindow::kWords; c += 61)
    EXPECT_TRUE(w.check_and_update(c)) << c;
}

TEST(ReplayWindow, HighCountersWithSenderBits) {
  ReplayWindow w;
  const std::uint64_t base = std::uint64_t{15} << 56;
  EXPECT_TRUE(w.check_and_update(base));
  EXPECT_TRUE(w.check_and_update(base + 2));
  EXPECT_TRUE(w.check_and_update(base + 1));
  EXPECT_FALSE(w.check_and_update(base + 1));
  EXPECT_TRUE(w.check_and_update(~std::uint64_t{0}));
  EXPECT_FALSE(w.check_and_update(~std::uint64_t{0}));
}

// Two workers receive copies of the same numbers (two uplinks of one client on two
// workers), each in its own reordered way: every number is accepted exactly once. Under
// TSan this also shows the windows free of data races.
template <typename Window, typename Number>
void exactly_once_from_two_threads(Number first) {
  constexpr unsigned kCount = 200'000;
  Window w;
  std::vector<std::uint8_t> won[2];
  won[0].assign(kCount, 0);
  won[1].assign(kCount, 0);
  auto run = [&](int t) {
    for (unsigned i = 0; i < kCount; ++i) {
      // Thread 1 runs up to 7 numbers behind or ahead of thread 0's order.
      const unsigned j = t == 0 ? i : (i ^ 7u) < kCount ? (i ^ 7u) : i;
      if (w.check_and_update(static_cast<Number>(first + j))) won[t][j] = 1;
    }
  };
  std::thread a(run, 0), b(run, 1);
  a.join();
  b.join();
  for (unsigned i = 0; i < kCount; ++i) ASSERT_EQ(won[0][i] + won[1][i], 1) << i;
}

TEST(ReplayWindow, ExactlyOnceFromTwoThreads) {
  exactly_once_from_two_threads<ReplayWindow, std::uint64_t>(std::uint64_t{3} << 56);
}

TEST(DedupWindow, ExactlyOnceFromTwoThreads) {
  exactly_once_from_two_threads<DedupWindow, std::uint32_t>(0xffff0000u);  // across the wrap
}

TEST(ReplayWindow, ManyThreadsOneCounter) {  // a replayed packet on every worker at once
  for (int round = 0; round < 200; ++round) {
    ReplayWindow w;
    std::atomic<int> accepted{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] { accepted += w.check_and_update(42) ? 1 : 0; });
    for (auto& t : ts) t.join();
    ASSERT_EQ(accepted.load(), 1);
  }
}

TEST(DedupWindow, ExactlyOnceAcrossWrap) {
  DedupWindow d;
  for (std::uint32_t s = 0xfffffff0u; s != 0x10u; ++s) {
    ASSERT_TRUE(d.check_and_update(s)) << s;
    ASSERT_FALSE(d.check_and_update(s)) << s;  // the copy from another uplink
  }
  EXPECT_TRUE(d.check_and_update(0x20));
  EXPECT_TRUE(d.check_and_update(0x15));  // late but inside the window
  EXPECT_FALSE(d.check_and_update(0x15));
  EXPECT_TRUE(d.check_and_update(0xffffff00u));   // never seen, 288 behind: inside the window
  EXPECT_FALSE(d.check_and_update(0xfffff000u));  // 4128 behind: too old
}

TEST(DedupWindow, ReorderedCopiesFromTwoUplinks) {
  DedupWindow d;
  int delivered = 0;
  // Uplink A delivers 0..999 in order; uplink B the same numbers 40 behind.
  for (std::uint32_t i = 0; i < 1040; ++i) {
    if (i < 1000) delivered += d.check_and_update(i);
    if (i >= 40) delivered += d.check_and_update(i - 40);
  }
  EXPECT_EQ(delivered, 1000);
}

}  // namespace
}  // namespace triglav::dp
