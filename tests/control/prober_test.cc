// The prober's schedule: idle uplinks every interval, uplinks carrying data every busy
// interval, failing ones every fast interval; health from answers and timeouts.
#include <gtest/gtest.h>

#include <vector>

#include "control/prober.h"

namespace triglav::ctl {
namespace {

constexpr std::int64_t kMs = 1'000'000;

struct Harness {
  dp::Session s;
  Prober p;
  std::vector<std::int64_t> sent;  // probe send times, ms
  bool answer = true;
  std::uint64_t pending = 0;
  std::int64_t pending_at = -1;

  Harness() {
    s.local_index = 7;
    p.add(&s, 0);
  }
  // Ticks every 10 ms until `until_ms`; answers each probe 1 ms later when `answer`;
  // `data` adds bytes to the session's counter before each tick.
  void run(std::int64_t from_ms, std::int64_t until_ms, bool data) {
    for (std::int64_t t = from_ms; t < until_ms; t += 10) {
      if (pending_at >= 0 && t * kMs >= pending_at) {
        p.on_pong(7, pending, pending_at);
        pending_at = -1;
      }
      if (data) s.tx[0].bytes.fetch_add(1200);
      p.tick(t * kMs, [&](dp::Session&, std::uint64_t body) {
        sent.push_back(t);
        if (answer) {
          pending = body;
          pending_at = t * kMs + kMs;
        }
      });
    }
  }
};

TEST(Prober, IdleUplinksEveryIntervalBusyOnesFaster) {
  Harness h;
  h.run(0, 3'000, false);
  EXPECT_EQ(h.sent, (std::vector<std::int64_t>{100, 1'100, 2'100}));
  EXPECT_EQ(h.p.state(&h.s), dp::HealthState::Healthy);
  h.sent.clear();
  h.run(3'000, 4'500, true);  // data flows: after the next probe, every 250 ms
  EXPECT_EQ(h.sent, (std::vector<std::int64_t>{3'100, 3'350, 3'600, 3'850, 4'100, 4'350}));
  h.sent.clear();
  h.run(4'500, 7'000, false);  // idle again: back to the interval
  EXPECT_EQ(h.sent, (std::vector<std::int64_t>{4'600, 4'850, 5'850, 6'850}));
}

TEST(Prober, UnansweredProbesClimbTheHealthLadderFast) {
  Harness h;
  h.run(0, 1'050, false);
  ASSERT_EQ(h.p.state(&h.s), dp::HealthState::Healthy);
  h.sent.clear();
  h.answer = false;
  h.run(1'050, 4'000, true);
  EXPECT_EQ(h.p.state(&h.s), dp::HealthState::Down);
  // 10 failures, each after the 100 ms minimum timeout, re-probing at once.
  ASSERT_GE(h.sent.size(), 10u);
  EXPECT_EQ(h.sent[0], 1'100);
  for (std::size_t i = 1; i < 10; ++i) EXPECT_LE(h.sent[i] - h.sent[i - 1], 120) << i;
  h.answer = true;
  h.sent.clear();
  h.run(4'000, 4'200, true);
  // Answered again, but the loss over the window (> 30 %) keeps it Unhealthy ...
  EXPECT_EQ(h.p.state(&h.s), dp::HealthState::Unhealthy);
  h.run(4'200, 20'000, true);  // ... until the failures have left the window
  EXPECT_EQ(h.p.state(&h.s), dp::HealthState::Healthy);
}

}  // namespace
}  // namespace triglav::ctl
