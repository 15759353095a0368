#include "dataplane/replay_window.h"

#include <gtest/gtest.h>

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
  for (std::uint64_t c = 0; c < 64 * ReplayWindow::kWords; ++c) ASSERT_TRUE(w.check_and_update(c));
  // Jump far ahead: slots reused by the ring must not remember old counters.
  const std::uint64_t base = 1'000'000 * 64;
  ASSERT_TRUE(w.check_and_update(base + 64 * ReplayWindow::kWords));
  for (std::uint64_t c = base + 65; c < base + 64 * ReplayWindow::kWords; c += 61)
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

}  // namespace
}  // namespace triglav::dp
