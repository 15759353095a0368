// The prober's schedule: idle uplinks every interval, uplinks carrying data every busy
// interval, failing ones every fast interval; health from answers and timeouts.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "control/prober.h"
#include "dataplane/wire.h"

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
      if (data) s.tx.get(0)->bytes.fetch_add(1200);
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

// The first unanswered probe already makes the uplink suspect (striping leaves it), and
// tick() says so, so that the control thread publishes it at once; an answer clears it.
TEST(Prober, FirstTimeoutMakesTheUplinkSuspect) {
  Harness h;
  h.run(0, 500, false);
  EXPECT_FALSE(h.p.view(&h.s).suspect);
  h.answer = false;
  bool reported = false;
  for (std::int64_t t = 500; t < 1'400 && !h.p.view(&h.s).suspect; t += 10)
    reported = h.p.tick(t * kMs, [](dp::Session&, std::uint64_t) {});
  EXPECT_TRUE(h.p.view(&h.s).suspect);
  EXPECT_TRUE(reported);
  EXPECT_EQ(h.p.state(&h.s), dp::HealthState::Healthy);  // one failure: still Healthy
  h.answer = true;
  h.run(1'400, 1'600, false);
  EXPECT_FALSE(h.p.view(&h.s).suspect);
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

// Answers the next probe after `t_ms` (ticking every 10 ms) `rtt_ms` later with the
// peer's packet counts grown by `sent` and `got`; returns what on_pong returned.
struct Counted {
  Harness& h;
  std::int64_t t_ms;
  std::uint64_t received = 0, expected = 0;
  bool answer(std::uint64_t sent, std::uint64_t got, std::int64_t rtt_ms = 1) {
    std::uint64_t body = 0;
    std::int64_t at = 0;
    for (int i = 0; i < 1'000 && body == 0; ++i, t_ms += 10)
      h.p.tick(t_ms * kMs, [&](dp::Session&, std::uint64_t b) {
        body = b;
        at = t_ms;
      });
    EXPECT_NE(body, 0u);
    expected += sent;
    received += got;
    t_ms = at + rtt_ms;
    return h.p.on_pong(7, body, t_ms * kMs, std::nullopt, Prober::PeerPackets{received, expected});
  }
};

// Every packet counted: a path that loses 3 % of them while its RTT stays at its base is
// lossy (striping leaves it) from the kLossyStreak-th sample in a row that shows it, and
// on_pong says so (one bad sample is not enough: a burst of tail drops at a flow's start
// looks the same); its figure fades while it rests, and tick() reports when it is to be
// tried again, after a hold that doubles when it turns lossy again soon.
TEST(Prober, PacketLossMakesTheUplinkLossy) {
  Harness h;
  h.run(0, 1'050, false);
  Counted c{h, 1'050};
  EXPECT_FALSE(c.answer(0, 0));  // the first counts: nothing to compare with yet
  EXPECT_FALSE(h.p.view(&h.s).lossy);
  EXPECT_FALSE(c.answer(1'000, 1'000));
  EXPECT_DOUBLE_EQ(h.p.view(&h.s).packet_loss, 0.0);
  EXPECT_FALSE(c.answer(1'000, 900));  // one burst: 10 %
  EXPECT_FALSE(c.answer(1'000, 1'000));
  EXPECT_FALSE(c.answer(1'000, 1'000));
  EXPECT_FALSE(h.p.view(&h.s).lossy);
  for (int i = 0; i < 8; ++i) EXPECT_FALSE(c.answer(1'000, 1'000)) << i;  // the burst's figure fades
  ASSERT_LT(h.p.view(&h.s).packet_loss, 0.001);
  EXPECT_FALSE(c.answer(1'000, 970));
  EXPECT_FALSE(c.answer(1'000, 970));
  EXPECT_TRUE(c.answer(1'000, 970));  // the third in a row
  EXPECT_TRUE(h.p.view(&h.s).lossy);
  // 1.5 %, 2.25 %, 2.625 % (the EMA), less what the second between probes faded it.
  const double start_loss = h.p.view(&h.s).packet_loss;
  EXPECT_NEAR(start_loss, 0.022, 0.002);
  UplinkStatus st;
  h.p.fill(st, h.s);
  EXPECT_TRUE(st.lossy);
  // Rests: probes answered without counts (an older peer would), nothing to sample.
  bool reported = false;
  std::int64_t back_ms = -1;
  for (std::int64_t t = c.t_ms; t < c.t_ms + 10'000 && back_ms < 0; t += 10) {
    reported = h.p.tick(t * kMs, [](dp::Session&, std::uint64_t) {});
    if (!h.p.view(&h.s).lossy) back_ms = t - c.t_ms;
  }
  EXPECT_TRUE(reported);
  // About 2.2 % fades below 0.5 % after log2(4.4) half-lives: about 4.3 s (the first
  // hold, 2 s, is shorter).
  const double half_lives = std::log2(start_loss / 0.005);
  EXPECT_NEAR(static_cast<double>(back_ms), half_lives * 2'000, 50);
  // Tried again, it loses again at once: three samples of 1.6 % take the figure (just
  // under 0.5 %) back to about 1.2 %, which fades below 0.5 % in about 2.6 s, but the
  // hold is now twice the first: 4 s.
  // (The first answer also brings the health back from the unanswered probes of the rest.)
  c.t_ms += back_ms;
  for (int i = 0; i < 2; ++i) {
    c.answer(1'000, 984);
    EXPECT_FALSE(h.p.view(&h.s).lossy) << i;
  }
  EXPECT_TRUE(c.answer(1'000, 984));
  EXPECT_TRUE(h.p.view(&h.s).lossy);
  const std::int64_t again_ms = c.t_ms;
  std::int64_t back2_ms = -1;
  for (std::int64_t t = again_ms; t < again_ms + 10'000 && back2_ms < 0; t += 10) {
    h.p.tick(t * kMs, [](dp::Session&, std::uint64_t) {});
    if (!h.p.view(&h.s).lossy) back2_ms = t - again_ms;
  }
  EXPECT_NEAR(static_cast<double>(back2_ms), 4'000, 20);
}

// Loss while the RTT shows a queue is congestion (a full bottleneck drops what the
// senders push into it): the uplink stays in use.
TEST(Prober, CongestionLossIsNotLossy) {
  Harness h;
  h.run(0, 1'050, false);
  Counted c{h, 1'050};
  c.answer(0, 0);
  for (int i = 0; i < 20; ++i) c.answer(1'000, 1'000, 40);  // a queue builds: 40 ms against 1
  ASSERT_GT(h.p.view(&h.s).srtt_ms, 20.0);
  for (unsigned i = 0; i < 2 * Prober::kLossyStreak; ++i) {  // more samples in a row than the streak
    EXPECT_FALSE(c.answer(1'000, 900, 40)) << i;
    EXPECT_FALSE(h.p.view(&h.s).lossy) << i;
  }
  EXPECT_GT(h.p.view(&h.s).packet_loss, 0.04);
}

// With the peer's clock (a Pong of 40 bytes): the queue on the way out alone. Answers
// 1 ms after the probe, the peer's clock 1 ms ahead of ours plus the queue: the least
// offset is the empty path; a later 30 ms more is a 30 ms queue (smoothed). Loss while
// that queue is near the largest seen is congestion, not the path's own loss.
TEST(Prober, PeerClockGivesTheOutboundQueue) {
  Harness h;
  h.run(0, 1'050, false);
  std::int64_t t = 1'050;
  std::uint64_t received = 0, expected = 0;
  auto answer = [&](std::int64_t queue_ms, std::uint64_t sent, std::uint64_t got) {
    std::uint64_t body = 0;
    for (int i = 0; i < 1'000 && body == 0; ++i, t += 10)
      h.p.tick(t * kMs, [&](dp::Session&, std::uint64_t b) { body = b; });
    received += got;
    expected += sent;
    std::uint8_t pong[40];
    dp::store_le64(pong, body);
    dp::store_le64(pong + 8, 0);
    dp::store_le64(pong + 16, received);
    dp::store_le64(pong + 24, expected);
    dp::store_le64(pong + 32, body + static_cast<std::uint64_t>((1 + queue_ms) * kMs) + 5'000'000'000ull);
    return h.p.on_pong(7, std::span<const std::uint8_t>(pong, sizeof pong), static_cast<std::int64_t>(body) + kMs);
  };
  for (int i = 0; i < 4; ++i) answer(0, 0, 0);
  EXPECT_NEAR(h.p.view(&h.s).out_queue_ms, 0.0, 1e-9);
  EXPECT_FALSE(dp::queueing(h.p.view(&h.s)));
  for (int i = 0; i < 12; ++i) answer(30, 1'000, 1'000);
  EXPECT_NEAR(h.p.view(&h.s).out_queue_ms, 30.0, 1.0);  // the RTT saw none of it
  EXPECT_LT(h.p.view(&h.s).srtt_ms, 2.0);
  EXPECT_TRUE(dp::queueing(h.p.view(&h.s)));
  for (unsigned i = 0; i < 2 * Prober::kLossyStreak; ++i) answer(30, 1'000, 950);
  EXPECT_FALSE(h.p.view(&h.s).lossy);
  EXPECT_GT(h.p.view(&h.s).packet_loss, 0.03);
}

TEST(Prober, RekeyKeepsMeasurementsAndTakesLatePongs) {
  Harness h;
  h.run(0, 2'050, true);
  ASSERT_EQ(h.p.state(&h.s), dp::HealthState::Healthy);
  const dp::UplinkView before = h.p.view(&h.s);
  UplinkStatus st;
  h.p.fill(st, h.s);
  const std::uint64_t bytes = st.tx_bytes;
  ASSERT_GT(bytes, 0u);
  // A probe goes out on the old session, then the rekey replaces it.
  std::uint64_t body = 0;
  h.p.tick(2'100 * kMs, [&](dp::Session&, std::uint64_t b) { body = b; });
  ASSERT_NE(body, 0u);
  dp::Session next;
  next.local_index = 9;
  h.p.rekey(&h.s, &next, 2'101 * kMs);
  EXPECT_EQ(h.p.state(&next), dp::HealthState::Healthy);
  EXPECT_DOUBLE_EQ(h.p.view(&next).srtt_ms, before.srtt_ms);
  // The Pong of that probe arrives on the old index: it still counts.
  h.p.on_pong(7, body, 2'105 * kMs);  // a 5 ms sample where the others were 1 ms
  EXPECT_GT(h.p.view(&next).srtt_ms, before.srtt_ms);
  next.tx.get(0)->bytes.fetch_add(100);
  UplinkStatus st2;
  h.p.fill(st2, next);
  EXPECT_EQ(st2.tx_bytes, bytes + 100);  // byte counts do not restart
  // Once the old session is gone, its index means nothing.
  h.p.remove(&h.s);
  std::uint64_t body2 = 0;
  h.p.tick(5'000 * kMs, [&](dp::Session&, std::uint64_t b) { body2 = b; });
  ASSERT_NE(body2, 0u);
  const double srtt = h.p.view(&next).srtt_ms;
  h.p.on_pong(7, body2, 5'009 * kMs);
  EXPECT_DOUBLE_EQ(h.p.view(&next).srtt_ms, srtt);
  h.p.on_pong(9, body2, 5'009 * kMs);
  EXPECT_GT(h.p.view(&next).srtt_ms, srtt);
}

}  // namespace
}  // namespace triglav::ctl
