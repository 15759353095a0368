#include "tools/linkem/link_model.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tools/linkem/scenario.h"

namespace triglav::linkem {
namespace {

constexpr std::int64_t kMs = 1'000'000;

TEST(LinkModel, DelayWithoutRateIsExact) {
  Direction d(1);
  LinkParams p;
  p.delay_ns = 30 * kMs;
  d.set_params(p);
  const Verdict v = d.on_packet(1000, 1400);
  ASSERT_EQ(v.fate, Fate::Deliver);
  EXPECT_EQ(v.copies, 1);
  EXPECT_EQ(v.deliver_ns[0], 1000 + 30 * kMs);
}

TEST(LinkModel, RateSerialisesPackets) {
  Direction d(1);
  LinkParams p;
  p.rate_bps = 8e6;  // 1 byte per microsecond
  d.set_params(p);
  // Ten 1000-byte packets at the same instant leave 1 ms apart.
  for (int i = 0; i < 10; ++i) {
    const Verdict v = d.on_packet(0, 1000);
    EXPECT_EQ(v.deliver_ns[0], (i + 1) * kMs) << i;
  }
  EXPECT_EQ(d.backlog_bytes(0), 10000u);
  EXPECT_EQ(d.backlog_bytes(5 * kMs), 5000u);
  EXPECT_EQ(d.stats().max_queued_ns, 10 * kMs);
}

TEST(LinkModel, QueueLimitTailDrops) {
  Direction d(1);
  LinkParams p;
  p.rate_bps = 8e6;
  p.queue_bytes = 3000;
  d.set_params(p);
  int delivered = 0, dropped = 0;
  for (int i = 0; i < 10; ++i) {
    const Verdict v = d.on_packet(0, 1000);
    (v.fate == Fate::Deliver ? delivered : dropped)++;
  }
  EXPECT_EQ(delivered, 3);
  EXPECT_EQ(dropped, 7);
  EXPECT_EQ(d.stats().drop_queue, 7u);
}

TEST(LinkModel, LossRateIsWhatWasAsked) {
  Direction d(42);
  LinkParams p;
  p.loss = 0.1;
  d.set_params(p);
  int lost = 0;
  for (int i = 0; i < 100000; ++i) lost += d.on_packet(i, 100).fate == Fate::DropLoss;
  EXPECT_NEAR(lost / 100000.0, 0.1, 0.005);
}

TEST(LinkModel, BurstLossComesInBursts) {
  Direction d(7);
  LinkParams p;
  p.ge_enter = 0.01;  // bursts start rarely ...
  p.ge_exit = 0.25;   // ... and last 4 packets on average
  d.set_params(p);
  int lost = 0, bursts = 0;
  bool prev = false;
  for (int i = 0; i < 200000; ++i) {
    const bool l = d.on_packet(i, 100).fate == Fate::DropBurst;
    lost += l;
    bursts += l && !prev;
    prev = l;
  }
  // Stationary loss = enter / (enter + exit) = 3.85 %; mean burst length = 1 / exit = 4.
  EXPECT_NEAR(lost / 200000.0, 0.01 / 0.26, 0.005);
  EXPECT_NEAR(static_cast<double>(lost) / bursts, 4.0, 0.3);
}

TEST(LinkModel, JitterKeepsOrderUnlessReorderingIsAllowed) {
  for (bool reorder : {false, true}) {
    Direction d(3);
    LinkParams p;
    p.delay_ns = 50 * kMs;
    p.jitter_ns = 10 * kMs;
    p.reorder = reorder;
    d.set_params(p);
    std::int64_t last = 0;
    int inversions = 0;
    for (int i = 0; i < 1000; ++i) {
      const Verdict v = d.on_packet(i * kMs / 10, 100);
      inversions += v.deliver_ns[0] < last;
      last = std::max(last, v.deliver_ns[0]);
    }
    if (reorder)
      EXPECT_GT(inversions, 100);
    else
      EXPECT_EQ(inversions, 0);
  }
}

TEST(LinkModel, OutageDropsEverythingAndDuplicationDuplicates) {
  Direction d(5);
  LinkParams p;
  p.down = true;
  d.set_params(p);
  EXPECT_EQ(d.on_packet(0, 100).fate, Fate::DropOutage);
  p.down = false;
  p.duplicate = 1.0;
  d.set_params(p);
  const Verdict v = d.on_packet(0, 100);
  EXPECT_EQ(v.copies, 2);
  EXPECT_EQ(d.stats().duplicated, 1u);
}

TEST(LinkModel, SameSeedSameFate) {
  Direction a(99), b(99);
  LinkParams p;
  p.loss = 0.3;
  p.jitter_ns = 5 * kMs;
  p.reorder = true;
  a.set_params(p);
  b.set_params(p);
  for (int i = 0; i < 1000; ++i) {
    const Verdict x = a.on_packet(i, 500), y = b.on_packet(i, 500);
    ASSERT_EQ(x.fate, y.fate);
    ASSERT_EQ(x.deliver_ns[0], y.deliver_ns[0]);
  }
}

TEST(Scenario, SegmentsInheritAndRamp) {
  const Scenario sc = parse_scenario(R"(
name = "t"
duration = "30s"
[[links]]
name = "wifi"
[[links.segments]]
at = "0s"
rate = "20mbit"
delay = "10ms"
up_loss = "1%"
[[links.segments]]
at = "10s"
delay = "30ms"
ramp = true
[[links.segments]]
at = "20s"
outage = true
)",
                                     "t.toml");
  ASSERT_EQ(sc.links.size(), 1u);
  const LinkSchedule& l = sc.links[0];
  EXPECT_EQ(sc.duration_ns, 30'000 * kMs);
  LinkParams a = l.at(0, true);
  EXPECT_DOUBLE_EQ(a.rate_bps, 20e6);
  EXPECT_EQ(a.delay_ns, 10 * kMs);
  EXPECT_DOUBLE_EQ(a.loss, 0.01);
  EXPECT_DOUBLE_EQ(l.at(0, false).loss, 0.0);  // up_ applies to one direction only
  EXPECT_EQ(l.at(5'000 * kMs, true).delay_ns, 20 * kMs);  // halfway through the ramp
  LinkParams c = l.at(15'000 * kMs, true);
  EXPECT_EQ(c.delay_ns, 30 * kMs);
  EXPECT_DOUBLE_EQ(c.rate_bps, 20e6);  // inherited
  EXPECT_FALSE(c.down);
  EXPECT_TRUE(l.at(25'000 * kMs, false).down);
}

TEST(Scenario, ErrorsNameLineAndKey) {
  auto error_of = [](const std::string& text) {
    try {
      parse_scenario(text, "x.toml");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of("colour = 1\n[[links]]\nname='a'\n").find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(error_of("name='x'\n").find("no [[links]]"), std::string::npos);
  EXPECT_NE(error_of("[[links]]\nname='a'\n[[links.segments]]\nat='0s'\nrate='fast'\n").find("line 5"),
            std::string::npos);
  EXPECT_NE(error_of("[[links]]\nname='a'\n[[links.segments]]\nat='1s'\n").find("start at"), std::string::npos);
  EXPECT_NE(error_of("[[links]]\nname='a'\n[[links.segments]]\nat='0s'\nspeed='1'\n").find("unknown key 'speed'"),
            std::string::npos);
  EXPECT_NE(error_of("[[links]]\nname='a'\n[[links.segments]]\nrate='1mbit'\n").find("without 'at'"),
            std::string::npos);
}

TEST(Scenario, EveryShippedScenarioParses) {
  const char* dir = std::getenv("TRIGLAV_SCENARIOS");
  ASSERT_NE(dir, nullptr) << "TRIGLAV_SCENARIOS is set by meson";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".toml") continue;
    SCOPED_TRACE(e.path().string());
    const Scenario sc = load_scenario(e.path().string());
    EXPECT_EQ(sc.name + ".toml", e.path().filename().string());
    EXPECT_FALSE(sc.about.empty());
    EXPECT_GT(sc.duration_ns, 0);
    EXPECT_FALSE(sc.links.empty());
    ++n;
  }
  EXPECT_GE(n, 20);
}

}  // namespace
}  // namespace triglav::linkem
