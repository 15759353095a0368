// Tunnel fragments put back together: pieces in any order, one packet per (session,
// sender, sequence number), every rule a broken peer could break (off the grid,
// overlaps, two ends, pieces past the end or past the largest packet), the time bound,
// and fixed memory when more packets are in progress than the table holds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "dataplane/reassembly.h"
#include "dataplane/wire.h"

namespace triglav::dp {
namespace {

constexpr std::int64_t kMs = 1'000'000;

std::vector<std::uint8_t> packet(std::size_t n, std::uint8_t seed = 1) {
  std::vector<std::uint8_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(seed + i * 7);
  return p;
}

struct Harness {
  explicit Harness(ReassemblyConfig cfg = small()) : r(cfg) {}
  static ReassemblyConfig small() {
    ReassemblyConfig c;
    c.entries = 4;
    c.max_packet = 1500;
    c.headroom = 12;
    c.timeout_ns = 1000 * kMs;
    return c;
  }
  Reassembly::Verdict offer(const std::vector<std::uint8_t>& pkt, std::uint32_t offset, std::uint32_t len, bool last,
                            std::int64_t now = 0, std::uint32_t seq = 1, std::uint32_t session = 9,
                            std::uint8_t sender = 0) {
    Reassembly::Piece p;
    p.key = {session, seq, sender};
    p.offset = offset;
    p.data = pkt.data() + offset;
    p.len = len;
    p.last = last;
    return r.offer(p, now, done);
  }
  std::vector<std::uint8_t> got() const { return {done.data, done.data + done.len}; }
  Reassembly r;
  Reassembly::Done done;
};

using V = Reassembly::Verdict;

TEST(Reassembly, PiecesInOrderMakeThePacket) {
  Harness h;
  const auto pkt = packet(1400);
  EXPECT_EQ(h.offer(pkt, 0, 600, false), V::Held);
  EXPECT_EQ(h.offer(pkt, 600, 600, false), V::Held);
  EXPECT_EQ(h.offer(pkt, 1200, 200, true), V::Complete);
  EXPECT_EQ(h.got(), pkt);
  EXPECT_EQ(h.r.stats().pieces, 3u);
  EXPECT_EQ(h.r.stats().packets, 1u);
  EXPECT_EQ(h.r.in_progress(), 0u);
}

TEST(Reassembly, AnyOrderAndOddLastLength) {
  Harness h;
  const auto pkt = packet(1237);
  EXPECT_EQ(h.offer(pkt, 1200, 37, true), V::Held);
  EXPECT_EQ(h.offer(pkt, 400, 400, false), V::Held);
  EXPECT_EQ(h.offer(pkt, 800, 400, false), V::Held);
  EXPECT_EQ(h.offer(pkt, 0, 400, false), V::Complete);
  EXPECT_EQ(h.got(), pkt);
}

TEST(Reassembly, HeadroomIsFreeInFrontOfThePacket) {
  Harness h;
  const auto pkt = packet(100);
  ASSERT_EQ(h.offer(pkt, 0, 100, true), V::Complete);  // a single piece is a whole packet
  std::memset(h.done.data - 12, 0xee, 12);              // e.g. a virtio_net_hdr
  EXPECT_EQ(h.got(), pkt);
}

TEST(Reassembly, PacketsOfOtherSessionsSendersOrNumbersStayApart) {
  Harness h;
  const auto a = packet(800, 1), b = packet(800, 2), c = packet(800, 3), d = packet(800, 4);
  EXPECT_EQ(h.offer(a, 0, 400, false, 0, 1, 9, 0), V::Held);
  EXPECT_EQ(h.offer(b, 0, 400, false, 0, 1, 10, 0), V::Held);  // another session (a copy on another uplink)
  EXPECT_EQ(h.offer(c, 0, 400, false, 0, 1, 9, 1), V::Held);   // another sender
  EXPECT_EQ(h.offer(d, 0, 400, false, 0, 2, 9, 0), V::Held);   // another number
  EXPECT_EQ(h.offer(c, 400, 400, true, 0, 1, 9, 1), V::Complete);
  EXPECT_EQ(h.got(), c);
  EXPECT_EQ(h.offer(a, 400, 400, true, 0, 1, 9, 0), V::Complete);
  EXPECT_EQ(h.got(), a);
  EXPECT_EQ(h.r.in_progress(), 2u);
}

TEST(Reassembly, BrokenRulesGiveThePacketUp) {
  const auto pkt = packet(1400);
  {
    Harness h;  // off the grid
    EXPECT_EQ(h.offer(pkt, 0, 600, false), V::Held);
    EXPECT_EQ(h.offer(pkt, 604, 600, false), V::Bad);
    EXPECT_EQ(h.r.in_progress(), 0u);
  }
  {
    Harness h;  // a piece that is not the last must be whole grains
    EXPECT_EQ(h.offer(pkt, 0, 601, false), V::Bad);
  }
  {
    Harness h;  // overlap
    EXPECT_EQ(h.offer(pkt, 0, 600, false), V::Held);
    EXPECT_EQ(h.offer(pkt, 592, 600, false), V::Bad);
    EXPECT_EQ(h.r.in_progress(), 0u);
  }
  {
    Harness h;  // two last pieces
    EXPECT_EQ(h.offer(pkt, 1200, 100, true), V::Held);
    EXPECT_EQ(h.offer(pkt, 1304, 96, true), V::Bad);
  }
  {
    Harness h;  // a piece past the end the last one set
    EXPECT_EQ(h.offer(pkt, 600, 200, true), V::Held);
    EXPECT_EQ(h.offer(pkt, 800, 600, false), V::Bad);
  }
  {
    Harness h;  // the last piece set an end before a piece already there
    EXPECT_EQ(h.offer(pkt, 800, 600, false), V::Held);
    EXPECT_EQ(h.offer(pkt, 600, 8, true), V::Bad);
  }
  {
    Harness h;  // a piece reaching the end, and a last piece in the same place
    EXPECT_EQ(h.offer(pkt, 800, 600, false), V::Held);
    EXPECT_EQ(h.offer(pkt, 800, 600, true), V::Bad);
  }
  {
    Harness h;  // empty, and beyond the largest packet
    EXPECT_EQ(h.offer(pkt, 0, 0, true), V::Bad);
    const auto big = packet(1600);
    EXPECT_EQ(h.offer(big, 1496, 8, true), V::Bad);
  }
  Harness h;
  EXPECT_EQ(h.offer(pkt, 0, 600, false), V::Held);
  EXPECT_EQ(h.offer(pkt, 0, 600, false), V::Bad);  // the same piece twice
  EXPECT_EQ(h.r.stats().bad, 1u);
  // A fresh start of the same packet afterwards works.
  EXPECT_EQ(h.offer(pkt, 0, 800, false), V::Held);
  EXPECT_EQ(h.offer(pkt, 800, 600, true), V::Complete);
  EXPECT_EQ(h.got(), pkt);
}

TEST(Reassembly, APacketMissingAPieceIsGivenUpAfterItsTime) {
  Harness h;
  const auto pkt = packet(1400);
  EXPECT_EQ(h.offer(pkt, 0, 600, false, 0), V::Held);
  h.r.expire(999 * kMs);
  EXPECT_EQ(h.r.in_progress(), 1u);
  h.r.expire(1000 * kMs);
  EXPECT_EQ(h.r.in_progress(), 0u);
  EXPECT_EQ(h.r.stats().timeouts, 1u);
  // Its other pieces, late, start a packet that never completes either.
  EXPECT_EQ(h.offer(pkt, 600, 800, true, 1001 * kMs), V::Held);
  EXPECT_EQ(h.offer(pkt, 600, 800, true, 2001 * kMs, 5), V::Held);  // offer expires too
  EXPECT_EQ(h.r.stats().timeouts, 2u);
}

TEST(Reassembly, AFullTableGivesUpTheOldestAndAWritingEntryStaysUntilReleased) {
  Harness h;  // 4 entries
  const auto pkt = packet(1000);
  for (std::uint32_t seq = 1; seq <= 4; ++seq) EXPECT_EQ(h.offer(pkt, 0, 496, false, seq, seq), V::Held);
  EXPECT_EQ(h.offer(pkt, 0, 496, false, 10, 5), V::Held);  // seq 1 given up for it
  EXPECT_EQ(h.r.stats().overflows, 1u);
  EXPECT_EQ(h.offer(pkt, 496, 504, true, 11, 1), V::Held);  // seq 1 starts again, giving up seq 2
  EXPECT_EQ(h.r.stats().overflows, 2u);
  // Complete all four in the table; none is released (their writes are in flight).
  std::vector<std::uint32_t> writing;
  for (std::uint32_t seq : {1u, 3u, 4u, 5u}) {
    const V v = seq == 1 ? h.offer(pkt, 0, 496, false, 12, seq) : h.offer(pkt, 496, 504, true, 12, seq);
    ASSERT_EQ(v, V::Complete) << seq;
    EXPECT_EQ(h.got(), pkt);
    writing.push_back(h.done.entry);
  }
  EXPECT_EQ(h.offer(pkt, 0, 496, false, 13, 6), V::NoRoom);
  EXPECT_EQ(h.r.stats().overflows, 3u);
  h.r.release(writing[2]);
  h.r.release(writing[2]);  // twice: harmless
  EXPECT_EQ(h.offer(pkt, 0, 496, false, 14, 6), V::Held);
  h.r.expire(100'000 * kMs);  // a writing entry does not time out
  EXPECT_EQ(h.r.stats().timeouts, 1u);
  EXPECT_EQ(h.offer(pkt, 0, 496, false, 100'001 * kMs, 7), V::Held);
  EXPECT_EQ(h.offer(pkt, 0, 496, false, 100'001 * kMs, 8), V::Held);  // seq 7 given up: the only one filling
  EXPECT_EQ(h.r.stats().overflows, 4u);
  EXPECT_EQ(h.r.in_progress(), 1u);
}

TEST(Reassembly, RandomSplitsAndOrdersAlwaysRebuildThePacket) {
  std::mt19937 rng(42);
  ReassemblyConfig cfg;
  cfg.entries = 8;
  cfg.max_packet = kMaxMtu;
  Reassembly r(cfg);
  for (int round = 0; round < 300; ++round) {
    const auto n = static_cast<std::uint32_t>(std::uniform_int_distribution<>(1, kMaxMtu)(rng));
    const auto pkt = packet(n, static_cast<std::uint8_t>(round));
    const auto piece =
        static_cast<std::uint32_t>(std::uniform_int_distribution<>(1, 200)(rng) * static_cast<int>(kFragmentGrain));
    std::vector<std::uint32_t> offsets;
    for (std::uint32_t o = 0; o < n; o += piece) offsets.push_back(o);
    std::shuffle(offsets.begin(), offsets.end(), rng);
    Reassembly::Done d;
    for (std::size_t i = 0; i < offsets.size(); ++i) {
      Reassembly::Piece p;
      p.key = {1, static_cast<std::uint32_t>(round), 0};
      p.offset = offsets[i];
      p.len = std::min(piece, n - offsets[i]);
      p.data = pkt.data() + p.offset;
      p.last = p.offset + p.len == n;
      const V v = r.offer(p, round, d);
      ASSERT_EQ(v, i + 1 == offsets.size() ? V::Complete : V::Held) << round << " " << i;
    }
    ASSERT_EQ(std::vector<std::uint8_t>(d.data, d.data + d.len), pkt) << round;
    r.release(d.entry);
  }
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(r.stats().packets, 300u);
}

TEST(Reassembly, ThePieceSizeFitsThePath) {
  EXPECT_EQ(fragment_piece(0), 0u);
  EXPECT_EQ(fragment_piece(kFragmentOverhead + 7), 0u);
  EXPECT_EQ(fragment_piece(kFragmentOverhead + 8), 8u);
  // A 1246-byte path (a 1280-byte link under IPv4 and UDP): 1208-byte pieces.
  EXPECT_EQ(fragment_piece(1246), 1208u);
  EXPECT_LE(fragment_piece(1246) + kFragmentOverhead, 1246u);
  EXPECT_EQ(fragment_piece(1246) % kFragmentGrain, 0u);
}

}  // namespace
}  // namespace triglav::dp
