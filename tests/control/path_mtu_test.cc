// The path-MTU search: against paths that carry datagrams up to a limit, it finds the
// limit within its resolution, with few probes, and says "unknown" for a peer that
// answers nothing.
#include <gtest/gtest.h>

#include <cstdint>

#include "control/path_mtu.h"

namespace triglav::ctl {
namespace {

constexpr std::int64_t kMs = 1'000'000;

// Runs a search over a path that delivers datagrams of up to `limit` bytes (0: none),
// losing the first `drop` probes whatever their size, and answers after 20 ms. Returns
// the probes sent.
unsigned run(PathMtuSearch& s, std::size_t need, std::size_t limit, std::int64_t& now, unsigned drop = 0) {
  s.start(need, now, true);
  unsigned probes = 0;
  for (int step = 0; step < 10'000 && s.searching(); ++step) {
    while (std::size_t size = s.due(now)) {
      if (++probes > drop && size <= limit) {
        now += 20 * kMs;
        s.answered(size, now);
        s.answered(size, now);  // a late duplicate answer changes nothing
      }
    }
    now += 25 * kMs;
    s.tick(now);
  }
  EXPECT_FALSE(s.searching());
  return probes;
}

TEST(PathMtu, ALostRoundOfTheNeedIsTriedAgain) {
  PathMtuSearch s;
  std::int64_t now = 0;
  EXPECT_EQ(run(s, 1460, 1472, now, 2), 3u);  // both copies of the first round lost
  EXPECT_EQ(s.result(), 1460u);
  EXPECT_EQ(s.take_lost(), 2u);
  EXPECT_EQ(s.take_lost(), 0u);
}

TEST(PathMtu, AFullPathTakesOneAnswer) {
  PathMtuSearch s;
  std::int64_t now = 0;
  EXPECT_LE(run(s, 1460, 1472, now), 2u);
  EXPECT_EQ(s.result(), 1460u);
}

TEST(PathMtu, FindsASmallerHopWithinItsResolution) {
  for (std::size_t limit : {1252u, 1300u, 1464u, 600u, 548u}) {
    SCOPED_TRACE(limit);
    PathMtuSearch s;
    std::int64_t now = 0;
    const unsigned probes = run(s, 1460, limit, now);
    EXPECT_LE(s.result(), limit);
    EXPECT_GE(s.result() + PathMtuSearch::kResolution, limit);
    EXPECT_LE(probes, 2u * 11);  // the need twice, the floor and about 7 halvings, two copies each
  }
}

TEST(PathMtu, NoAnswerAtAllIsUnknown) {
  PathMtuSearch s;
  std::int64_t now = 0;
  run(s, 1460, 0, now);
  EXPECT_EQ(s.result(), 0u);
}

TEST(PathMtu, RepeatsOnlyAfterItsInterval) {
  PathMtuSearch s;
  std::int64_t now = 0;
  run(s, 1460, 1300, now);
  s.start(1460, now);  // a new session soon after: the result stands
  EXPECT_FALSE(s.searching());
  s.start(1500, now);  // another need: searched again
  EXPECT_TRUE(s.searching());
  run(s, 1460, 1300, now);
  s.tick(now + PathMtuSearch::kRepeatNs);
  EXPECT_TRUE(s.searching());
}

// An ICMP message told the kernel of a smaller path: that bounds the result, also when
// probes "arrived" in fragments the kernel made, until the kernel forgets it.
TEST(PathMtu, TheKernelsBoundHolds) {
  PathMtuSearch s;
  std::int64_t now = 0;
  run(s, 1460, 1472, now);
  ASSERT_EQ(s.result(), 1460u);
  EXPECT_TRUE(s.limit(1252, now));
  EXPECT_EQ(s.result(), 1252u);
  EXPECT_FALSE(s.limit(1252, now));
  EXPECT_FALSE(s.limit(1300, now));  // what the probes will say next decides upwards
  EXPECT_TRUE(s.limit(1200, now));
  run(s, 1460, 1472, now);  // a later search through fragments
  EXPECT_EQ(s.result(), 1200u);
  EXPECT_FALSE(s.limit(1500, now));  // the kernel forgot: the next search says
  run(s, 1460, 1472, now);
  EXPECT_EQ(s.result(), 1460u);
  EXPECT_FALSE(s.limit(100, now));  // below anything usable: not believed
}

TEST(PathMtu, LateAnswersDoNotCount) {
  PathMtuSearch s;
  std::int64_t now = 0;
  s.start(1460, now, true);
  for (int round = 0; round < 2; ++round) {  // the need: two rounds of two copies, spaced
    EXPECT_EQ(s.due(now), 1460u);
    EXPECT_EQ(s.due(now), 0u);
    now += PathMtuSearch::kSpacingNs;
    EXPECT_EQ(s.due(now), 1460u);
    EXPECT_EQ(s.due(now), 0u);
    for (int i = 0; i < 4; ++i) s.tick(now += PathMtuSearch::kWaitNs / 4);
  }
  EXPECT_FALSE(s.answered(1460, now));  // its answer, late: the floor is in flight now
  EXPECT_EQ(s.due(now), PathMtuSearch::kFloor);
  EXPECT_FALSE(s.answered(999, now));  // never sent
  EXPECT_TRUE(s.searching());
  EXPECT_EQ(s.take_lost(), 4u);
}

TEST(PathMtu, ASearchLeftAloneAsksAgainRatherThanJudging) {
  PathMtuSearch s;
  std::int64_t now = 0;
  s.start(1460, now, true);
  EXPECT_EQ(s.due(now), 1460u);
  now += 10 * PathMtuSearch::kWaitNs;  // the uplink was not Healthy meanwhile
  EXPECT_FALSE(s.tick(now));
  EXPECT_EQ(s.due(now), 1460u);  // the same size again, nothing counted lost
  EXPECT_EQ(s.take_lost(), 0u);
}

}  // namespace
}  // namespace triglav::ctl
