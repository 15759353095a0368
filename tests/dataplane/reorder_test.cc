// The reorder buffer: in-order delivery of striped flows, a gap given up as lost as soon
// as every active uplink moved past it (else when its wait runs out), one flow never
// holding another back, and fixed memory under adversarial sequence numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "dataplane/reorder.h"

namespace triglav::dp {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kWait = 40 * kMs;

// Offers packets whose bytes are their flow sequence number, and records what reaches
// the "TUN", in order, freeing each slot at once (as a completed write would).
struct Harness {
  explicit Harness(ReorderConfig cfg = {}) : r(cfg) {}

  Reorder::Verdict offer(std::uint64_t flow, std::uint8_t uplink, std::uint32_t send_seq, std::uint32_t flow_seq,
                         std::int64_t now, std::uint8_t sender = 0, UplinkMask live = 0) {
    std::uint8_t bytes[8];
    std::memcpy(bytes, &flow_seq, 4);
    std::memcpy(bytes + 4, &flow, 4);
    Reorder::Packet p;
    p.client = 7;
    p.sender = sender;
    p.uplink = uplink;
    p.send_seq = send_seq;
    p.flow_seq = flow_seq;
    p.flow = flow;
    p.data = bytes;
    p.len = sizeof bytes;
    p.uplinks = live;
    p.repair_ns = repair_ns;
    p.resent = resent;
    const auto v = r.offer(p, kWait, now);
    switch (v) {
      case Reorder::Verdict::Deliver:
        record(bytes);
        drain();
        break;
      case Reorder::Verdict::DrainFirst:
        drain();
        record(bytes);
        break;
      case Reorder::Verdict::Held: drain(); break;
      case Reorder::Verdict::Duplicate: ++duplicates; break;
    }
    return v;
  }
  void expire(std::int64_t now) {
    r.expire(now);
    drain();
  }
  void drain() {
    r.drain([&](const Reorder::Ready& x) {
      EXPECT_EQ(x.len, 8u);
      record(x.data);
      r.free_slot(x.slot);
    });
  }
  void record(const std::uint8_t* bytes) {
    std::uint32_t seq = 0, flow = 0;
    std::memcpy(&seq, bytes, 4);
    std::memcpy(&flow, bytes + 4, 4);
    out[flow].push_back(seq);
  }

  // What the buffer asked the peer for since the last call.
  std::vector<Reorder::Ask> asks() {
    std::vector<Reorder::Ask> v;
    r.drain_asks([&](const Reorder::Ask& a) { v.push_back(a); });
    return v;
  }
  // Offers a packet sent again (kDataResent).
  Reorder::Verdict offer_resent(std::uint64_t flow, std::uint8_t uplink, std::uint32_t send_seq,
                                std::uint32_t flow_seq, std::int64_t now, UplinkMask live = 0) {
    resent = true;
    const auto v = offer(flow, uplink, send_seq, flow_seq, now, 0, live);
    resent = false;
    return v;
  }

  Reorder r;
  std::map<std::uint32_t, std::vector<std::uint32_t>> out;  // flow -> sequences delivered
  int duplicates = 0;
  std::int64_t repair_ns = 0;  // > 0: the peer takes repairs
  bool resent = false;
};

std::vector<std::uint32_t> range(std::uint32_t from, std::uint32_t to) {
  std::vector<std::uint32_t> v;
  for (std::uint32_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

TEST(Reorder, InOrderPassesStraightThrough) {
  Harness h;
  for (std::uint32_t i = 0; i < 100; ++i)
    EXPECT_EQ(h.offer(1, 0, i, i, i * kMs), Reorder::Verdict::Deliver);
  EXPECT_EQ(h.out[1], range(0, 100));
  EXPECT_EQ(h.r.stats().in_order, 100u);
  EXPECT_EQ(h.r.stats().held, 0u);
  EXPECT_EQ(h.r.held(), 0u);
}

// Even packets on a fast uplink, odd ones on one three packets slower: delivered in
// order, nothing given up.
TEST(Reorder, SlowerUplinkIsWaitedFor) {
  Harness h;
  std::vector<std::pair<std::uint8_t, std::uint32_t>> arrivals;
  for (std::uint32_t i = 0; i < 200; i += 2) {
    arrivals.push_back({0, i});
    if (i >= 6) arrivals.push_back({1, i - 5});
  }
  for (std::uint32_t i = 195; i < 200; i += 2) arrivals.push_back({1, i});
  h.offer(9, 1, 0, 0, 0);  // uplink 1 has carried this sender's packets before
  std::int64_t t = 0;
  for (auto [u, seq] : arrivals) h.offer(1, u, seq + 1, seq, t += kMs / 10);
  EXPECT_EQ(h.out[1], range(0, 200));
  EXPECT_EQ(h.r.stats().lost_gaps + h.r.stats().timeout_gaps + h.r.stats().overflows, 0u);
  EXPECT_GT(h.r.stats().held, 50u);
  EXPECT_EQ(h.r.held(), 0u);
}

// Packet 1 (on uplink 1) is lost: once uplink 1 delivers packet 3, sent after the held
// packet 2, the gap is given up at once, with no wait.
TEST(Reorder, GapLostOnceEveryUplinkMovedPastIt) {
  Harness h;
  h.offer(1, 0, 0, 0, 0);
  h.offer(9, 1, 1, 0, kMs / 10);  // uplink 1 is active (another flow's packet, sent before the gap)
  h.offer(1, 0, 3, 2, kMs);
  EXPECT_EQ(h.r.held(), 1u);
  h.offer(1, 1, 4, 3, 2 * kMs);
  EXPECT_EQ(h.r.stats().lost_gaps, 1u);
  EXPECT_EQ(h.r.stats().timeout_gaps, 0u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2, 3}));
}

// The same loss while uplink 1 has not moved past it: the gap waits out its wait.
TEST(Reorder, GapWaitsWhileAnUplinkMayStillBringIt) {
  Harness h;
  h.offer(1, 0, 0, 0, 0);
  h.offer(2, 1, 1, 0, 0);  // uplink 1 active, its newest packet sent before the gap
  h.offer(1, 0, 3, 2, kMs);
  h.offer(1, 0, 4, 3, 2 * kMs);
  EXPECT_EQ(h.r.held(), 2u);
  EXPECT_EQ(h.r.next_deadline(), kMs + kWait);
  h.expire(kMs + kWait - 1);
  EXPECT_EQ(h.r.held(), 2u);
  h.expire(kMs + kWait);
  EXPECT_EQ(h.r.stats().timeout_gaps, 1u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2, 3}));
  EXPECT_EQ(h.r.next_deadline(), INT64_MAX);
}

// An uplink silent for longer than uplink_active_ns no longer holds gaps open (here
// one the peer does not name, so the wait, 40 ms, would hold it otherwise: the shorter
// of the two decides).
TEST(Reorder, SilentUplinkStopsCounting) {
  ReorderConfig cfg;
  cfg.uplink_active_ns = 20 * kMs;
  Harness h(cfg);
  h.offer(1, 1, 0, 0, 0);          // uplink 1, then silence
  h.offer(1, 0, 1, 1, 29 * kMs);   // uplink 0
  h.offer(1, 0, 3, 3, 30 * kMs);   // 2 missing: only uplink 0 counts, and it moved past
  EXPECT_EQ(h.r.stats().lost_gaps, 1u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 1, 3}));
}

// Flow 1 waits for a lost packet; flow 2, from the same sender, is delivered meanwhile.
TEST(Reorder, ALossOnOneFlowDoesNotHoldAnother) {
  Harness h;
  h.offer(9, 1, 0, 0, 0);  // uplink 1 active
  h.offer(1, 0, 1, 0, 0);
  h.offer(1, 0, 3, 2, kMs);  // flow 1's packet 1 (send 2) is missing
  for (std::uint32_t i = 0; i < 10; ++i) h.offer(2, 0, 4 + i, i, 2 * kMs);
  EXPECT_EQ(h.out[2], range(0, 10));
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0}));
  EXPECT_EQ(h.r.held(), 1u);
}

// Given up, then arrives after all: delivered (late beats retransmitted).
TEST(Reorder, LatePacketAfterItsGapWasGivenUpIsDelivered) {
  Harness h;
  h.offer(1, 0, 0, 0, 0);
  h.offer(1, 0, 2, 2, kMs);
  h.expire(kMs + kWait);
  EXPECT_EQ(h.offer(1, 1, 1, 1, kMs + kWait + 1), Reorder::Verdict::Deliver);
  EXPECT_EQ(h.r.stats().late, 1u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2, 1}));
}

// However long the group's wait, and however long gaps took before, a gap waits at
// most kMaxWaitNs; the wait learnt from slow fills applies to the next gaps.
TEST(Reorder, WaitIsLearntAndBounded) {
  Reorder r;
  std::uint8_t b[4] = {};
  auto offer = [&](std::uint8_t uplink, std::uint32_t send, std::uint32_t seq, std::int64_t now, std::int64_t wait) {
    Reorder::Packet p;
    p.client = 1;
    p.uplink = uplink;
    p.send_seq = send;
    p.flow_seq = seq;
    p.flow = 1;
    p.data = b;
    p.len = 4;
    r.offer(p, wait, now);
    r.drain([&](const Reorder::Ready& x) { r.free_slot(x.slot); });
  };
  offer(1, 0, 0, 0, kWait);
  offer(0, 2, 2, kMs, 10 * Reorder::kMaxWaitNs);  // held; the group asks for far too long
  EXPECT_EQ(r.next_deadline(), kMs + Reorder::kMaxWaitNs);
  offer(1, 1, 1, 101 * kMs, kWait);  // the gap filled after 100 ms
  offer(0, 4, 4, 102 * kMs, kWait);  // a new gap: it may wait what the last one needed, and a quarter more
  EXPECT_GE(r.next_deadline(), 102 * kMs + 125 * kMs);
  EXPECT_LE(r.next_deadline(), 102 * kMs + Reorder::kMaxWaitNs);
}

// A live uplink that has not carried this sender's packets lately may be carrying the
// missing one (a burst moved it there): the gap waits out its wait rather than being
// given up because the busy uplink moved past it.
TEST(Reorder, LiveButQuietUplinkKeepsTheGapOpen) {
  Harness h;
  for (std::uint32_t i = 0; i < 10; ++i) h.offer(1, 0, i, i, i * kMs, 0, 0b11);  // all on uplink 0
  h.offer(1, 0, 11, 11, 20 * kMs, 0, 0b11);  // 10 went to uplink 1, slower
  EXPECT_EQ(h.r.held(), 1u);
  EXPECT_EQ(h.r.stats().lost_gaps, 0u);
  h.offer(1, 1, 10, 10, 30 * kMs, 0, 0b11);
  EXPECT_EQ(h.out[1], range(0, 12));
  // Without uplink 1 among the live ones, the same gap is lost at once (the old rule).
  Harness g;
  for (std::uint32_t i = 0; i < 10; ++i) g.offer(1, 0, i, i, i * kMs, 0, 0b01);
  g.offer(1, 0, 11, 11, 20 * kMs, 0, 0b01);
  EXPECT_EQ(g.r.stats().lost_gaps, 1u);
}

// An uplink the peer no longer stripes over (here: left for its losses) holds a gap
// only for about a wait after its last packet, what was in flight on it; one the peer
// stripes over holds it until the gap's own wait runs out.
TEST(Reorder, LeftUplinkHoldsGapsOnlyForAWait) {
  Harness h;
  h.offer(1, 1, 0, 0, 0, 0, 0b11);           // uplink 1 striped, then left
  h.offer(1, 0, 1, 1, kMs, 0, 0b01);         // the peer stripes over uplink 0 alone
  h.offer(1, 0, 3, 3, 2 * kMs, 0, 0b01);     // 2 missing: uplink 1 may still bring it
  EXPECT_EQ(h.r.stats().lost_gaps, 0u);
  EXPECT_EQ(h.r.held(), 1u);
  h.offer(1, 0, 5, 5, kWait + kMs, 0, 0b01);  // a wait after uplink 1's last: it is out
  EXPECT_EQ(h.r.stats().lost_gaps, 2u);
  EXPECT_EQ(h.r.stats().timeout_gaps, 0u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 1, 3, 5}));
  // Still striped over: the same silence keeps the gap open until its wait runs out.
  Harness g;
  g.offer(1, 1, 0, 0, 0, 0, 0b11);
  g.offer(1, 0, 1, 1, kMs, 0, 0b11);
  g.offer(1, 0, 3, 3, 2 * kMs, 0, 0b11);
  g.offer(1, 0, 5, 5, kWait + kMs, 0, 0b11);
  EXPECT_EQ(g.r.stats().lost_gaps, 0u);
  EXPECT_EQ(g.r.held(), 2u);
  // Left and silent for more than a wait before the gap: the gap is lost at once.
  Harness k;
  k.offer(1, 1, 0, 0, 0, 0, 0b11);
  k.offer(1, 0, 1, 1, 50 * kMs, 0, 0b01);
  k.offer(1, 0, 3, 3, 51 * kMs, 0, 0b01);
  EXPECT_EQ(k.r.stats().lost_gaps, 1u);
  EXPECT_EQ(k.r.held(), 0u);
  EXPECT_EQ(k.out[1], (std::vector<std::uint32_t>{0, 1, 3}));
}

// The sender counts anew (it restarted): its uplinks' old newest numbers are forgotten
// after a silence, and a flow far behind where it was is followed from there.
TEST(Reorder, SenderThatCountsAnewIsFollowed) {
  Harness h;
  for (std::uint32_t i = 0; i < 100; ++i) h.offer(1, i % 2, 5000 + i, 7000 + i, i * kMs);
  const std::int64_t later = 5'000 * kMs;
  h.offer(1, 0, 0, 3, later);  // after the restart: new numbers, a new flow sequence
  h.offer(1, 1, 1, 4, later + kMs);
  h.offer(1, 0, 3, 6, later + 2 * kMs);  // 5 (send 2) missing: held, not lost (uplink 1 is at 1)
  EXPECT_EQ(h.r.held(), 1u);
  h.offer(1, 1, 2, 5, later + 3 * kMs);
  std::vector<std::uint32_t> want = range(7000, 7100);
  for (std::uint32_t i = 3; i <= 6; ++i) want.push_back(i);
  EXPECT_EQ(h.out[1], want);
}

// A packet larger than a slot is never cut: it goes on as it is, after what was held.
TEST(Reorder, PacketTooBigForASlotIsNotHeld) {
  ReorderConfig cfg;
  cfg.slot_bytes = 8;  // the harness's packets are 8 bytes: room for 8 - headroom
  cfg.headroom = 4;
  Harness h(cfg);
  h.offer(9, 1, 0, 0, 0);
  h.offer(1, 0, 1, 0, 0);
  EXPECT_EQ(h.offer(1, 0, 3, 2, kMs), Reorder::Verdict::Deliver);
  EXPECT_EQ(h.r.held(), 0u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2}));
}

TEST(Reorder, SameSequenceHeldTwiceIsADuplicate) {
  Harness h;
  h.offer(9, 1, 0, 0, 0);  // uplink 1 active
  h.offer(1, 0, 1, 0, 0);
  EXPECT_EQ(h.offer(1, 0, 3, 2, kMs), Reorder::Verdict::Held);
  EXPECT_EQ(h.offer(1, 0, 3, 2, kMs), Reorder::Verdict::Duplicate);
  EXPECT_EQ(h.duplicates, 1);
}

// A pool of 8 slots: a gap behind 20 packets gives itself up rather than grow; every
// packet but the missing one is delivered once, in order.
TEST(Reorder, FullPoolGivesTheGapUp) {
  ReorderConfig cfg;
  cfg.slots = 8;
  Harness h(cfg);
  h.offer(9, 1, 0, 0, 0);  // uplink 1 active, and stays behind
  h.offer(1, 0, 1, 0, 0);  // flow sequence 1 (send 2) never comes
  for (std::uint32_t i = 2; i < 22; ++i) {
    h.offer(1, 0, i + 1, i, i * kMs);
    EXPECT_LE(h.r.held(), 8u);
  }
  EXPECT_GE(h.r.stats().overflows, 1u);
  h.expire(INT64_MAX / 2);
  auto want = range(2, 22);
  want.insert(want.begin(), 0);
  EXPECT_EQ(h.out[1], want);
  EXPECT_EQ(h.r.free_slots(), 8u);
}

// A sequence far ahead of the window releases what was held, in order, before it.
TEST(Reorder, JumpBeyondTheWindowReleasesInOrder) {
  ReorderConfig cfg;
  cfg.per_flow = 16;
  Harness h(cfg);
  h.offer(9, 1, 0, 0, 0);
  h.offer(1, 0, 1, 0, 0);
  h.offer(1, 0, 3, 2, 0);
  h.offer(1, 0, 4, 3, 0);
  EXPECT_EQ(h.r.held(), 2u);
  EXPECT_EQ(h.offer(1, 0, 5, 1000, kMs), Reorder::Verdict::DrainFirst);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2, 3, 1000}));
  EXPECT_EQ(h.offer(1, 0, 6, 1001, kMs), Reorder::Verdict::Deliver);
}

TEST(Reorder, SequencesWrap) {
  Harness h;
  const std::uint32_t start = 0xfffffff0u;
  h.offer(9, 1, start - 1, 0, 0);
  for (std::uint32_t i = 0; i < 40; i += 2) h.offer(1, 0, start + i, start + i, kMs);
  EXPECT_GT(h.r.held(), 10u);
  for (std::uint32_t i = 1; i < 40; i += 2) h.offer(1, 1, start + i, start + i, 2 * kMs);
  std::vector<std::uint32_t> want;
  for (std::uint32_t i = 0; i < 40; ++i) want.push_back(start + i);
  EXPECT_EQ(h.out[1], want);
  EXPECT_EQ(h.r.stats().lost_gaps + h.r.stats().timeout_gaps + h.r.stats().overflows, 0u);
}

TEST(Reorder, ResidenceIsMeasured) {
  Harness h;
  h.offer(9, 1, 0, 0, 0);
  h.offer(1, 0, 1, 0, 0);
  h.offer(1, 0, 3, 2, 0);
  h.offer(1, 1, 2, 1, 10 * kMs);  // 2 waited 10 ms
  EXPECT_EQ(h.r.stats().residence[4], 1u);  // the 8-16 ms bucket
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 1, 2}));
}

// More flows with gaps than the table holds: the rest pass through unordered (counted);
// held packets never exceed the pool; nothing crashes on random sequence numbers.
TEST(Reorder, AdversarialSequencesStayWithinBounds) {
  ReorderConfig cfg;
  cfg.slots = 64;
  cfg.flows = 16;
  cfg.senders = 4;
  cfg.per_flow = 32;
  Harness h(cfg);
  std::mt19937_64 rng(5);
  std::int64_t t = 0;
  for (int i = 0; i < 200'000; ++i) {
    const auto flow = rng() % 64;
    const auto uplink = static_cast<std::uint8_t>(rng() % 20);  // some beyond kMaxUplinks
    const auto sender = static_cast<std::uint8_t>(rng() % 16);
    const std::uint32_t seq =
        rng() % 4 == 0 ? static_cast<std::uint32_t>(rng()) : static_cast<std::uint32_t>(i / 3 + rng() % 40);
    h.offer(flow, uplink, static_cast<std::uint32_t>(rng()), seq, t += static_cast<std::int64_t>(rng() % kMs), sender);
    ASSERT_LE(h.r.held(), 64u);
    ASSERT_EQ(h.r.held() + h.r.free_slots(), 64u);
    if (i % 1000 == 0) h.expire(t);
  }
  h.expire(INT64_MAX / 2);
  EXPECT_EQ(h.r.held(), 0u);
  EXPECT_EQ(h.r.free_slots(), 64u);
  EXPECT_GT(h.r.stats().untracked, 0u);
}

// --- loss repair ---------------------------------------------------------------------

constexpr std::int64_t kRepair = 20 * kMs;

// The loss of GapLostOnceEveryUplinkMovedPastIt with repair: the gap is asked for (the
// numbers between the packets on either side of it) rather than given up, and the
// packet sent again puts the flow back in order.
TEST(ReorderRepair, LostGapIsAskedForAndFilled) {
  Harness h;
  h.repair_ns = kRepair;
  h.offer(1, 0, 0, 0, 0);
  h.offer(9, 1, 1, 0, kMs / 10);
  h.offer(1, 0, 3, 2, kMs);
  h.offer(1, 1, 4, 3, 2 * kMs);
  const auto asks = h.asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].client, 7u);
  EXPECT_EQ(asks[0].sender, 0u);
  EXPECT_EQ(asks[0].after, 0u);
  EXPECT_EQ(asks[0].before, 3u);
  EXPECT_EQ(h.r.stats().repair_asked, 1u);
  EXPECT_EQ(h.r.stats().lost_gaps, 0u);
  EXPECT_EQ(h.r.held(), 2u);
  EXPECT_EQ(h.r.next_deadline(), 2 * kMs + kRepair);
  h.offer(1, 1, 5, 4, 3 * kMs);  // more traffic asks nothing again
  EXPECT_TRUE(h.asks().empty());
  EXPECT_EQ(h.offer_resent(1, 0, 2, 1, 12 * kMs), Reorder::Verdict::Deliver);
  EXPECT_EQ(h.out[1], range(0, 5));
  EXPECT_EQ(h.r.stats().repaired, 1u);
  EXPECT_EQ(h.r.stats().lost_gaps + h.r.stats().timeout_gaps, 0u);
  EXPECT_EQ(h.r.held(), 0u);
}

// No repair by its deadline: the gap is given up as lost (not as a timeout), and the
// packet sent again, coming after, is delivered late.
TEST(ReorderRepair, OverdueRepairGivesTheGapUp) {
  Harness h;
  h.repair_ns = kRepair;
  h.offer(1, 0, 0, 0, 0);
  h.offer(9, 1, 1, 0, 0);
  h.offer(1, 0, 3, 2, kMs);
  h.offer(1, 1, 4, 3, 2 * kMs);
  ASSERT_EQ(h.asks().size(), 1u);
  h.expire(2 * kMs + kRepair - 1);
  EXPECT_EQ(h.r.held(), 2u);
  h.expire(2 * kMs + kRepair);
  EXPECT_EQ(h.r.stats().lost_gaps, 1u);
  EXPECT_EQ(h.r.stats().timeout_gaps, 0u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2, 3}));
  EXPECT_EQ(h.offer_resent(1, 0, 2, 1, 30 * kMs), Reorder::Verdict::Deliver);
  EXPECT_EQ(h.r.stats().late, 1u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2, 3, 1}));
}

// Two gaps known lost by the same packet are both asked for at once, each with the
// numbers on either side of it.
TEST(ReorderRepair, EveryLostGapIsAskedAtOnce) {
  Harness h;
  h.repair_ns = kRepair;
  h.offer(9, 1, 0, 0, 0);    // uplink 1, before the gaps
  h.offer(1, 0, 1, 0, 0);
  h.offer(1, 0, 3, 2, kMs);  // 1 (sent as 2) lost on uplink 1
  h.offer(1, 0, 5, 4, kMs);  // 3 (sent as 4) lost too
  EXPECT_TRUE(h.asks().empty());  // uplink 1 has not moved past them
  h.offer(1, 1, 6, 5, 2 * kMs);
  const auto asks = h.asks();
  ASSERT_EQ(asks.size(), 2u);
  EXPECT_EQ(asks[0].after, 1u);
  EXPECT_EQ(asks[0].before, 3u);
  EXPECT_EQ(asks[1].after, 3u);
  EXPECT_EQ(asks[1].before, 5u);
  h.offer_resent(1, 1, 4, 3, 3 * kMs);  // the second comes first: held
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0}));
  h.offer_resent(1, 0, 2, 1, 4 * kMs);
  EXPECT_EQ(h.out[1], range(0, 6));
  EXPECT_EQ(h.r.stats().repaired, 2u);
  EXPECT_EQ(h.r.held(), 0u);
}

// A live uplink that has gone quiet (the sender stopped using it after losing the gap's
// packet there) counts as past the gap for asking, not for giving it up.
TEST(ReorderRepair, QuietUplinkIsAskedPast) {
  Harness h;
  h.repair_ns = kRepair;
  const UplinkMask both = 0b111;  // and uplink 2, live but never heard: quiet too
  h.offer(1, 0, 0, 0, 0, 0, both);
  h.offer(9, 1, 1, 0, 0, 0, both);  // uplink 1's last packet, sent before the gap
  h.offer(1, 0, 3, 2, kMs, 0, both);
  EXPECT_TRUE(h.asks().empty());
  h.offer(1, 0, 4, 3, Reorder::kQuietNs, 0, both);
  EXPECT_TRUE(h.asks().empty());  // quiet for just kQuietNs: it may still bring it
  h.offer(1, 0, 5, 4, Reorder::kQuietNs + kMs, 0, both);
  const auto asks = h.asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].after, 0u);
  EXPECT_EQ(asks[0].before, 3u);
  EXPECT_EQ(h.r.stats().lost_gaps, 0u);
  // Not known lost: it is not given up before the wait it had without repair.
  EXPECT_EQ(h.r.next_deadline(), kMs + kWait);
  h.offer_resent(1, 0, 2, 1, Reorder::kQuietNs + 5 * kMs, both);
  EXPECT_EQ(h.out[1], range(0, 5));
  // Again, with no repair coming: a timeout at that wait, not a loss.
  Harness h2;
  h2.repair_ns = kRepair;
  h2.offer(1, 0, 0, 0, 0, 0, both);
  h2.offer(9, 1, 1, 0, 0, 0, both);
  h2.offer(1, 0, 3, 2, 0, 0, both);  // 1 (sent as 2) missing
  h2.offer(1, 0, 4, 3, Reorder::kQuietNs + kMs, 0, both);
  ASSERT_EQ(h2.asks().size(), 1u);
  h2.expire(kWait - 1);
  EXPECT_EQ(h2.r.held(), 2u);
  h2.expire(kWait);
  EXPECT_EQ(h2.r.stats().timeout_gaps, 1u);
  EXPECT_EQ(h2.r.stats().lost_gaps, 0u);
}

// Two packets lost in a row, asked for together: the second one's repair comes first
// and is held in front of the packet that asked; the gap still waits for its repair
// only, and is given up as lost (not as a timeout) when the first never comes.
TEST(ReorderRepair, PacketHeldInsideAnAskedGapWaitsAsItsAsker) {
  Harness h;
  h.repair_ns = kRepair;
  h.offer(1, 0, 0, 0, 0);
  h.offer(9, 1, 1, 0, 0);
  h.offer(1, 0, 4, 3, kMs);      // 1 and 2 (sent as 2 and 3) lost on uplink 1
  h.offer(1, 1, 5, 4, 2 * kMs);  // known lost now
  ASSERT_EQ(h.asks().size(), 1u);
  EXPECT_EQ(h.r.next_deadline(), 2 * kMs + kRepair);
  h.offer_resent(1, 0, 3, 2, 10 * kMs);  // held in front; its arrival starts no wait
  EXPECT_EQ(h.r.next_deadline(), 2 * kMs + kRepair);
  h.expire(2 * kMs + kRepair);
  EXPECT_EQ(h.r.stats().lost_gaps, 1u);
  EXPECT_EQ(h.r.stats().timeout_gaps, 0u);
  EXPECT_EQ(h.out[1], (std::vector<std::uint32_t>{0, 2, 3, 4}));
}

// A packet sent again says nothing about its uplink: a high number on it does not make
// a gap look lost.
TEST(ReorderRepair, PacketSentAgainMovesNoUplinkPast) {
  Harness h;
  h.repair_ns = kRepair;
  h.offer(1, 0, 0, 0, 0);
  h.offer(9, 1, 1, 0, 0);
  h.offer(1, 0, 3, 2, kMs);
  h.offer_resent(5, 1, 10, 0, 2 * kMs);
  EXPECT_TRUE(h.asks().empty());
  EXPECT_EQ(h.r.stats().lost_gaps, 0u);
  EXPECT_EQ(h.r.held(), 1u);
}

// A repair's wait is the one given (about the fastest uplink's RTT): repairs that come
// after their gap was given up lengthen neither it nor the wait of gaps that fill.
// Without repair, nothing is asked.
TEST(ReorderRepair, LateRepairsLengthenNoWait) {
  Harness h;
  h.repair_ns = kRepair;
  std::uint32_t send = 0;
  std::int64_t t = 0;
  h.offer(9, 1, send++, 0, t);
  t = 2 * Reorder::kQuietNs;  // uplink 1 quiet from here on between its packets
  for (std::uint32_t round = 0; round < 20; ++round) {
    const std::uint32_t base = round * 3;
    const std::uint32_t lost = send + 1;
    h.offer(1, 0, send, base, t += kMs);
    h.offer(1, 0, send + 2, base + 2, t += kMs);  // base + 1 lost on uplink 1, quiet since
    ASSERT_EQ(h.asks().size(), 1u) << round;
    const std::int64_t asked = t;
    EXPECT_EQ(h.r.next_deadline() - asked, kWait) << round;  // not known lost yet
    h.offer(9, 1, send + 3, round + 1, t += kMs);           // now it is
    EXPECT_EQ(h.r.next_deadline() - asked, kRepair) << round;
    h.expire(asked + kRepair);                                  // overdue
    h.offer_resent(1, 0, lost, base + 1, t += kRepair + kMs);  // and then it comes
    send += 4;
  }
  EXPECT_EQ(h.r.stats().late, 20u);
  EXPECT_EQ(h.r.stats().lost_gaps, 20u);
  // A gap that is not (yet) known lost still waits the group's wait, unlearnt.
  h.offer(9, 1, send, 21, t += kMs);  // uplink 1 heard, before the gap
  h.offer(1, 0, send + 1, 60, t += kMs);
  h.offer(1, 0, send + 3, 62, t += kMs);
  EXPECT_TRUE(h.asks().empty());
  EXPECT_EQ(h.r.next_deadline() - t, kWait);

  Harness plain;  // no repair: given up at once
  plain.offer(1, 0, 0, 0, 0);
  plain.offer(9, 1, 1, 0, 0);
  plain.offer(1, 0, 3, 2, kMs);
  plain.offer(1, 1, 4, 3, 2 * kMs);
  EXPECT_TRUE(plain.asks().empty());
  EXPECT_EQ(plain.r.stats().lost_gaps, 1u);
}

}  // namespace
}  // namespace triglav::dp
