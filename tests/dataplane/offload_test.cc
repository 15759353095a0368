#include "dataplane/offload.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/support/packets.h"

namespace triglav::dp {
namespace {

// A reference one's-complement sum: 16-bit words, one at a time (RFC 1071).
std::uint32_t ref_sum(const std::vector<std::uint8_t>& b, std::size_t from, std::size_t to, std::uint32_t s = 0) {
  for (std::size_t i = from; i < to; i += 2) s += (std::uint32_t{b[i]} << 8) | (i + 1 < to ? b[i + 1] : 0);
  return s;
}
std::uint16_t fold(std::uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(s);
}

// True when the packet's TCP (or UDP) checksum verifies: the sum over pseudo header and
// segment, checksum field included, is all ones.
bool l4_valid(const std::vector<std::uint8_t>& p, std::size_t l4_off, std::uint8_t proto) {
  const bool v6 = (p[0] >> 4) == 6;
  const std::size_t l4_len = p.size() - l4_off;
  std::uint32_t s = v6 ? ref_sum(p, 8, 40) : ref_sum(p, 12, 20);
  s += proto;
  s += static_cast<std::uint32_t>(l4_len & 0xffff) + static_cast<std::uint32_t>(l4_len >> 16);
  s = ref_sum(p, l4_off, p.size(), s);
  return fold(s) == 0xffff;
}

std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// A TCP packet with `payload` bytes (a counting pattern) and TCP flags, as the kernel
// hands a super-packet over: total length set, checksums not.
std::vector<std::uint8_t> tcp_packet(bool v6, std::size_t payload, std::uint8_t flags, std::size_t tcp_opts = 12) {
  const std::size_t ip = v6 ? 40 : 20, tcp = 20 + tcp_opts;
  std::vector<std::uint8_t> p(ip + tcp + payload, 0);
  if (v6) {
    p[0] = 0x60;
    const std::size_t pl = tcp + payload;
    p[4] = static_cast<std::uint8_t>(pl >> 8);
    p[5] = static_cast<std::uint8_t>(pl);
    p[6] = 6;
    p[7] = 64;
    for (int i = 0; i < 16; ++i) p[8 + i] = static_cast<std::uint8_t>(0x20 + i), p[24 + i] = static_cast<std::uint8_t>(0x90 + i);
  } else {
    // id 0x12fe: segments count up from it (and wrap)
    test::write_ipv4(p.data(), p.size() > 0xffff ? 0 : p.size(),
                     {.src_be = test::kClientIp, .dst_be = test::kServerIp, .proto = 6, .id = 0x12fe, .df = true});
  }
  std::uint8_t* t = &p[ip];
  t[0] = 0xc3, t[1] = 0x50, t[2] = 0x13, t[3] = 0x89;
  t[4] = 0xff, t[5] = 0xff, t[6] = 0xfc, t[7] = 0x00;  // seq close to wrapping
  t[12] = static_cast<std::uint8_t>((tcp / 4) << 4);
  t[13] = flags;
  t[14] = 0xff, t[15] = 0xff;
  for (std::size_t i = 0; i < tcp_opts; ++i) t[20 + i] = i == 0 ? 1 : static_cast<std::uint8_t>(i);  // options kept as they are
  for (std::size_t i = 0; i < payload; ++i) p[ip + tcp + i] = static_cast<std::uint8_t>(i * 7 + i / 251);
  return p;
}

// Segment i written with Checksum::Partial is the full segment but for the checksum
// field, which holds the pseudo header's sum: partial_checksum_hdr points the kernel
// at it, and completing it in place gives the full segment byte for byte.
void expect_partial_completes_to(const std::vector<std::uint8_t>& super, const GsoPlan& plan, unsigned i,
                                 const std::vector<std::uint8_t>& full, std::size_t ip, std::size_t field) {
  std::vector<std::uint8_t> part(plan.hdr_len + plan.mss);
  part.resize(write_segment(plan, super.data(), i, part.data(), Checksum::Partial));
  ASSERT_EQ(part.size(), full.size());
  EXPECT_EQ(std::memcmp(part.data(), full.data(), ip + field), 0) << i;
  EXPECT_EQ(std::memcmp(part.data() + ip + field + 2, full.data() + ip + field + 2, full.size() - ip - field - 2), 0);
  const std::uint8_t proto = field == 16 ? 6 : 17;
  const std::size_t l4_len = full.size() - ip;
  std::uint32_t s = ip == 40 ? ref_sum(full, 8, 40) : ref_sum(full, 12, 20);
  EXPECT_EQ(static_cast<std::uint16_t>(part[ip + field] << 8 | part[ip + field + 1]),
            fold(s + proto + static_cast<std::uint32_t>(l4_len)))
      << "the pseudo header's sum, segment " << i;
  VnetHdr h;
  ASSERT_TRUE(partial_checksum_hdr(part.data(), part.size(), h));
  EXPECT_EQ(h.flags, kVnetNeedsCsum);
  EXPECT_EQ(h.gso_type, kGsoNone);
  EXPECT_EQ(h.csum_start, ip);
  EXPECT_EQ(h.csum_offset, field);
  complete_partial_checksum(part.data(), part.size());
  EXPECT_EQ(part, full) << "completed, segment " << i;
}

void split_and_check(bool v6, std::size_t payload, std::size_t mss) {
  SCOPED_TRACE(testing::Message() << (v6 ? "IPv6" : "IPv4") << " payload " << payload << " mss " << mss);
  constexpr std::uint8_t kFlags = 0x80 | 0x10 | 0x08 | 0x01;  // CWR ACK PSH FIN
  auto p = tcp_packet(v6, payload, kFlags);
  VnetHdr h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = v6 ? kGsoTcp6 : kGsoTcp4;
  h.gso_size = static_cast<std::uint16_t>(mss);
  GsoPlan plan;
  ASSERT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Split);
  const std::size_t ip = v6 ? 40 : 20;
  EXPECT_EQ(plan.hdr_len, ip + 32);
  EXPECT_EQ(plan.segments, (payload + mss - 1) / mss);
  std::vector<std::uint8_t> joined;
  for (unsigned i = 0; i < plan.segments; ++i) {
    std::vector<std::uint8_t> seg(plan.hdr_len + plan.mss);
    seg.resize(write_segment(plan, p.data(), i, seg.data()));
    const bool last = i + 1 == plan.segments;
    EXPECT_EQ(seg.size(), plan.hdr_len + (last ? payload - i * mss : mss));
    if (v6) {
      EXPECT_EQ(std::size_t{seg[4]} << 8 | seg[5], seg.size() - 40);
    } else {
      EXPECT_EQ(std::size_t{seg[2]} << 8 | seg[3], seg.size());
      EXPECT_EQ(static_cast<std::uint16_t>(seg[4] << 8 | seg[5]), static_cast<std::uint16_t>(0x12fe + i));
      EXPECT_EQ(fold(ref_sum(seg, 0, 20)), 0xffff) << "IPv4 header checksum of segment " << i;
    }
    EXPECT_TRUE(l4_valid(seg, ip, 6)) << "TCP checksum of segment " << i;
    EXPECT_EQ(be32(&seg[ip + 4]), static_cast<std::uint32_t>(0xfffffc00u + i * mss)) << i;
    const std::uint8_t f = seg[ip + 13];
    EXPECT_EQ((f & 0x01) != 0, last) << "FIN only on the last segment";
    EXPECT_EQ((f & 0x08) != 0, last) << "PSH only on the last segment";
    EXPECT_EQ((f & 0x80) != 0, i == 0) << "CWR only on the first segment";
    EXPECT_TRUE(f & 0x10);
    EXPECT_EQ(std::memcmp(&seg[ip + 20], &p[ip + 20], 12), 0) << "TCP options copied";
    expect_partial_completes_to(p, plan, i, seg, ip, 16);
    joined.insert(joined.end(), seg.begin() + static_cast<long>(plan.hdr_len), seg.end());
  }
  EXPECT_TRUE(std::equal(joined.begin(), joined.end(), p.begin() + static_cast<long>(plan.hdr_len), p.end()));
  EXPECT_EQ(joined.size(), payload);
}

TEST(Offload, SplitsTcpSuperPackets) {
  for (bool v6 : {false, true}) {
    split_and_check(v6, 65000, 1368);  // a full 64 KB read at the default MTU
    split_and_check(v6, 4 * 1000, 1000);  // an exact multiple
    split_and_check(v6, 1001, 1000);      // a one-byte tail (odd length)
    split_and_check(v6, 700, 1000);       // fewer bytes than one MSS
    split_and_check(v6, 3 * 536 + 17, 536);
  }
}

TEST(Offload, SplitsUdpSuperPackets) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    // A UDP datagram built from the TCP one: protocol 17 and an 8-byte header.
    const std::size_t ip = v6 ? 40 : 20, payload = 3 * 1200 + 17;
    auto t = tcp_packet(v6, payload + 24, 0x10, 0);  // 20-byte TCP header = 8 UDP + 12 more payload
    std::vector<std::uint8_t> p(t.begin(), t.end() - 12);  // IP + 8 + payload + 12 - 12
    p.resize(ip + 8 + payload);
    if (v6) {
      p[6] = 17;
      p[4] = static_cast<std::uint8_t>((p.size() - 40) >> 8);
      p[5] = static_cast<std::uint8_t>(p.size() - 40);
    } else {
      p[9] = 17;
      p[2] = static_cast<std::uint8_t>(p.size() >> 8);
      p[3] = static_cast<std::uint8_t>(p.size());
    }
    VnetHdr h;
    h.flags = kVnetNeedsCsum;
    h.gso_type = kGsoUdpL4;
    h.gso_size = 1200;
    GsoPlan plan;
    ASSERT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Split);
    EXPECT_TRUE(plan.udp);
    EXPECT_EQ(plan.hdr_len, ip + 8);
    ASSERT_EQ(plan.segments, 4u);
    std::vector<std::uint8_t> joined;
    for (unsigned i = 0; i < plan.segments; ++i) {
      std::vector<std::uint8_t> seg(plan.hdr_len + plan.mss);
      seg.resize(write_segment(plan, p.data(), i, seg.data()));
      EXPECT_EQ(seg.size(), ip + 8 + (i == 3 ? 17u : 1200u));
      EXPECT_EQ(std::size_t{seg[ip + 4]} << 8 | seg[ip + 5], seg.size() - ip) << "UDP length";
      EXPECT_TRUE(l4_valid(seg, ip, 17)) << "UDP checksum of datagram " << i;
      expect_partial_completes_to(p, plan, i, seg, ip, 6);
      EXPECT_EQ(std::memcmp(&seg[ip], &p[ip], 4), 0) << "ports";
      if (!v6) {
        EXPECT_EQ(std::size_t{seg[2]} << 8 | seg[3], seg.size());
        EXPECT_EQ(fold(ref_sum(seg, 0, 20)), 0xffff);
      } else {
        EXPECT_EQ(std::size_t{seg[4]} << 8 | seg[5], seg.size() - 40);
      }
      joined.insert(joined.end(), seg.begin() + static_cast<long>(ip + 8), seg.end());
    }
    EXPECT_TRUE(std::equal(joined.begin(), joined.end(), p.begin() + static_cast<long>(ip + 8), p.end()));
  }
}

TEST(Offload, CompletesAPendingChecksum) {
  for (bool v6 : {false, true}) {
    for (std::uint8_t proto : {std::uint8_t{6}, std::uint8_t{17}}) {
      SCOPED_TRACE(testing::Message() << (v6 ? "IPv6" : "IPv4") << " proto " << int{proto});
      auto p = tcp_packet(v6, 333, 0x18);
      const std::size_t ip = v6 ? 40 : 20;
      if (proto == 17) {  // make it UDP: 8-byte header with length
        if (v6) p[6] = 17;
        else p[9] = 17;
        const std::size_t ul = p.size() - ip;
        p[ip + 4] = static_cast<std::uint8_t>(ul >> 8);
        p[ip + 5] = static_cast<std::uint8_t>(ul);
      }
      const std::size_t field = ip + (proto == 6 ? 16 : 6);
      // The kernel leaves the pseudo header's sum (not inverted) in the field.
      const std::size_t l4_len = p.size() - ip;
      std::uint32_t s = v6 ? ref_sum(p, 8, 40) : ref_sum(p, 12, 20);
      s += proto + static_cast<std::uint32_t>(l4_len);
      const std::uint16_t pseudo = fold(s);
      p[field] = static_cast<std::uint8_t>(pseudo >> 8);
      p[field + 1] = static_cast<std::uint8_t>(pseudo);
      VnetHdr h;
      h.flags = kVnetNeedsCsum;
      h.csum_start = static_cast<std::uint16_t>(ip);
      h.csum_offset = static_cast<std::uint16_t>(field - ip);
      GsoPlan plan;
      ASSERT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Plain);
      EXPECT_TRUE(l4_valid(p, ip, proto));
      // And l4_checksum computes the same field from scratch.
      const std::uint16_t c = l4_checksum(p.data(), ip, p.size(), proto);
      EXPECT_EQ(c, static_cast<std::uint16_t>(p[field] << 8 | p[field + 1]));
    }
  }
}

TEST(Offload, PlainPacketsAreLeftAlone) {
  auto p = tcp_packet(false, 100, 0x10);
  const auto before = p;
  GsoPlan plan;
  EXPECT_EQ(classify_tun_packet(VnetHdr{}, p.data(), p.size(), plan), TunPacket::Plain);
  EXPECT_EQ(p, before);
}

TEST(Offload, RejectsWhatDoesNotAddUp) {
  GsoPlan plan;
  auto p = tcp_packet(false, 3000, 0x10);
  VnetHdr h;
  h.gso_type = kGsoTcp4;
  h.gso_size = 0;
  EXPECT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Malformed) << "no MSS";
  h.gso_size = 1000;
  EXPECT_EQ(classify_tun_packet(h, p.data(), 30, plan), TunPacket::Malformed) << "cut inside the TCP header";
  EXPECT_EQ(classify_tun_packet(h, p.data(), 10, plan), TunPacket::Malformed) << "cut inside the IP header";
  h.gso_type = kGsoTcp6;
  EXPECT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Malformed) << "TCPv6 on an IPv4 packet";
  h.gso_type = kGsoTcp4;
  h.gso_size = 1;
  EXPECT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Malformed) << "too many segments";
  h.gso_size = 1000;
  p[20 + 12] = 0x40;  // data offset 16 bytes
  EXPECT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Malformed) << "TCP header below 20 bytes";
  p[20 + 12] = 0x80;
  p[9] = 17;
  EXPECT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Malformed) << "not TCP";
  h.gso_type = 3;  // UFO (IPv4 fragmentation of UDP): never asked for
  EXPECT_EQ(classify_tun_packet(h, p.data(), p.size(), plan), TunPacket::Unsupported);
  VnetHdr c;
  c.flags = kVnetNeedsCsum;
  c.csum_start = 20;
  c.csum_offset = static_cast<std::uint16_t>(p.size());
  EXPECT_EQ(classify_tun_packet(c, p.data(), p.size(), plan), TunPacket::Malformed) << "checksum field outside";
}

// Recomputes an IPv4 TCP packet's header and TCP checksums after an edit.
void fix_checksums(std::vector<std::uint8_t>& p) {
  p[10] = p[11] = 0;
  const std::uint16_t ipc = ipv4_header_checksum(p.data(), 20);
  p[10] = static_cast<std::uint8_t>(ipc >> 8);
  p[11] = static_cast<std::uint8_t>(ipc);
  const std::uint16_t c = l4_checksum(p.data(), 20, p.size(), 6);
  p[36] = static_cast<std::uint8_t>(c >> 8);
  p[37] = static_cast<std::uint8_t>(c);
}

// Segments as they arrive (each a whole packet with valid checksums), from a super-packet.
std::vector<std::vector<std::uint8_t>> segments_of(std::vector<std::uint8_t>& super, bool v6, std::size_t mss) {
  VnetHdr h;
  h.gso_type = v6 ? kGsoTcp6 : kGsoTcp4;
  h.gso_size = static_cast<std::uint16_t>(mss);
  GsoPlan plan;
  EXPECT_EQ(classify_tun_packet(h, super.data(), super.size(), plan), TunPacket::Split);
  std::vector<std::vector<std::uint8_t>> out;
  for (unsigned i = 0; i < plan.segments; ++i) {
    std::vector<std::uint8_t> seg(plan.hdr_len + plan.mss);
    seg.resize(write_segment(plan, super.data(), i, seg.data()));
    out.push_back(std::move(seg));
  }
  return out;
}

TEST(Offload, JoinsASplitFlowBackIntoOneSuperPacket) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    auto super = tcp_packet(v6, 40 * 1368 + 100, 0x18);  // ACK PSH: PSH ends up on the last
    auto segs = segments_of(super, v6, 1368);
    ASSERT_EQ(segs.size(), 41u);
    GroRun r;
    ASSERT_TRUE(gro_start(r, segs[0].data(), segs[0].size()));
    for (std::size_t i = 1; i < segs.size(); ++i) EXPECT_TRUE(gro_append(r, segs[i].data(), segs[i].size())) << i;
    EXPECT_EQ(r.n, 41u);
    EXPECT_TRUE(r.closed) << "the short last segment ends the run";
    const VnetHdr h = gro_finish(r);
    const std::size_t ip = v6 ? 40 : 20;
    EXPECT_EQ(h.flags, kVnetNeedsCsum);
    EXPECT_EQ(h.gso_type, v6 ? kGsoTcp6 : kGsoTcp4);
    EXPECT_EQ(h.gso_size, 1368);
    EXPECT_EQ(h.hdr_len, ip + 32);
    EXPECT_EQ(h.csum_start, ip);
    EXPECT_EQ(h.csum_offset, 16);
    // What the gather write sends: the first segment whole, then the others' payloads.
    std::vector<std::uint8_t> joined(segs[0]);
    for (std::size_t i = 1; i < segs.size(); ++i) joined.insert(joined.end(), segs[i].begin() + static_cast<long>(ip + 32), segs[i].end());
    ASSERT_EQ(joined.size(), super.size());
    EXPECT_EQ(std::memcmp(joined.data() + ip + 32, super.data() + ip + 32, super.size() - ip - 32), 0);
    if (v6) {
      EXPECT_EQ(std::size_t{joined[4]} << 8 | joined[5], joined.size() - 40);
    } else {
      EXPECT_EQ(std::size_t{joined[2]} << 8 | joined[3], joined.size());
      EXPECT_EQ(fold(ref_sum(joined, 0, 20)), 0xffff) << "IPv4 header checksum";
    }
    EXPECT_EQ(joined[ip + 13], 0x18) << "ACK and the last segment's PSH";
    EXPECT_EQ(be32(&joined[ip + 4]), 0xfffffc00u) << "the first segment's sequence number";
    // The TCP checksum field holds the pseudo header's sum: completing it over the
    // segment gives a valid checksum (what the kernel does for NEEDS_CSUM).
    GsoPlan plan;
    ASSERT_EQ(classify_tun_packet(VnetHdr{kVnetNeedsCsum, 0, 0, 0, h.csum_start, h.csum_offset}, joined.data(),
                                  joined.size(), plan), TunPacket::Plain);
    EXPECT_TRUE(l4_valid(joined, ip, 6));
  }
}

// Segments whose checksums the sender left partial (kDataChecksumPartial) join without
// verification, as their fields could not verify; the same bytes not marked partial do
// not. A lone partial packet that is not TCP or UDP has no checksum to point at.
TEST(Offload, PartialSegmentsJoinWithoutVerification) {
  auto super = tcp_packet(false, 3 * 1000, 0x10);
  VnetHdr vh;
  vh.gso_type = kGsoTcp4;
  vh.gso_size = 1000;
  GsoPlan plan;
  ASSERT_EQ(classify_tun_packet(vh, super.data(), super.size(), plan), TunPacket::Split);
  std::vector<std::vector<std::uint8_t>> segs;
  for (unsigned i = 0; i < plan.segments; ++i) {
    std::vector<std::uint8_t> seg(plan.hdr_len + plan.mss);
    seg.resize(write_segment(plan, super.data(), i, seg.data(), Checksum::Partial));
    segs.push_back(std::move(seg));
  }
  GroRun r;
  EXPECT_FALSE(gro_start(r, segs[0].data(), segs[0].size())) << "not marked partial: its checksum fails";
  ASSERT_TRUE(gro_start(r, segs[0].data(), segs[0].size(), true));
  EXPECT_TRUE(r.first_partial);
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "not marked partial";
  EXPECT_TRUE(gro_append(r, segs[1].data(), segs[1].size(), true));
  EXPECT_TRUE(gro_append(r, segs[2].data(), segs[2].size(), true));
  const VnetHdr h = gro_finish(r);
  std::vector<std::uint8_t> joined(segs[0]);
  for (std::size_t i = 1; i < segs.size(); ++i) {
    joined.insert(joined.end(), segs[i].begin() + static_cast<long>(plan.hdr_len), segs[i].end());
  }
  GsoPlan p2;
  ASSERT_EQ(classify_tun_packet(VnetHdr{kVnetNeedsCsum, 0, 0, 0, h.csum_start, h.csum_offset}, joined.data(),
                                joined.size(), p2), TunPacket::Plain);
  EXPECT_TRUE(l4_valid(joined, 20, 6)) << "the joined packet's checksum completes as the kernel would";

  auto icmp = tcp_packet(false, 50, 0x10);
  icmp[9] = 1;
  VnetHdr none;
  EXPECT_FALSE(partial_checksum_hdr(icmp.data(), icmp.size(), none));
  const auto before = icmp;
  complete_partial_checksum(icmp.data(), icmp.size());
  EXPECT_EQ(icmp, before) << "nothing to complete";
  auto frag = tcp_packet(false, 50, 0x10);
  frag[6] = 0x20;  // more fragments
  EXPECT_FALSE(partial_checksum_hdr(frag.data(), frag.size(), none));
  auto tiny = tcp_packet(false, 0, 0x10);
  EXPECT_FALSE(partial_checksum_hdr(tiny.data(), 30, none)) << "shorter than its TCP header";
}

TEST(Offload, JoinsOnlyWhatContinuesTheFlow) {
  auto super = tcp_packet(false, 4 * 1000, 0x10);
  auto segs = segments_of(super, false, 1000);
  GroRun r;
  auto fresh = [&] {
    segs = segments_of(super, false, 1000);
    EXPECT_TRUE(gro_start(r, segs[0].data(), segs[0].size()));
  };
  fresh();
  EXPECT_FALSE(gro_append(r, segs[2].data(), segs[2].size())) << "a sequence gap";
  EXPECT_TRUE(gro_append(r, segs[1].data(), segs[1].size()));
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "a repeated segment";
  fresh();
  segs[1][20 + 8] ^= 1;  // another ack number
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "another ack";
  fresh();
  segs[1][20 + 14] ^= 1;
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "another window";
  fresh();
  segs[1][20 + 25] ^= 1;
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "other options (timestamps)";
  fresh();
  segs[1][1] = 0x03;
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "another TOS (ECN CE)";
  fresh();
  segs[1][8] = 1;
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "another TTL";
  fresh();
  segs[1][20 + 1] ^= 1;
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "another port";
  fresh();
  segs[1][20 + 13] = 0x11;
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "FIN";
  fresh();
  segs[1][19] ^= 1;
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "another destination";
  fresh();
  segs[1][100] ^= 0x10;  // one payload bit: the TCP checksum no longer verifies
  EXPECT_FALSE(gro_append(r, segs[1].data(), segs[1].size())) << "a corrupted segment";
  segs = segments_of(super, false, 1000);
  segs[0][10] ^= 1;  // the IPv4 header checksum
  EXPECT_FALSE(gro_start(r, segs[0].data(), segs[0].size())) << "a corrupted first segment";
  // A shorter segment ends the run; nothing follows it.
  auto odd = tcp_packet(false, 2 * 1000 + 10, 0x10);
  auto o = segments_of(odd, false, 1000);
  std::vector<std::uint8_t> short_one(o[0].begin(), o[0].end() - 500);
  short_one[2] = static_cast<std::uint8_t>(short_one.size() >> 8);
  short_one[3] = static_cast<std::uint8_t>(short_one.size());
  fix_checksums(short_one);
  ASSERT_TRUE(gro_start(r, short_one.data(), short_one.size()));
  EXPECT_FALSE(gro_append(r, o[1].data(), o[1].size())) << "longer than the first: not a continuation";
  ASSERT_TRUE(gro_start(r, o[0].data(), o[0].size()));
  EXPECT_TRUE(gro_append(r, o[1].data(), o[1].size()));
  EXPECT_TRUE(gro_append(r, o[2].data(), o[2].size()));
  EXPECT_TRUE(r.closed);
  // What never starts a run: a bare ACK, SYN, IP options, a fragment, UDP.
  auto ack = tcp_packet(false, 0, 0x10);
  fix_checksums(ack);
  EXPECT_FALSE(gro_start(r, ack.data(), ack.size()));
  auto syn = tcp_packet(false, 10, 0x02);
  fix_checksums(syn);
  EXPECT_FALSE(gro_start(r, syn.data(), syn.size()));
  auto frag = tcp_packet(false, 100, 0x10);
  frag[6] = 0x20;  // MF
  fix_checksums(frag);
  EXPECT_FALSE(gro_start(r, frag.data(), frag.size()));
  auto udp = tcp_packet(false, 100, 0x10);
  udp[9] = 17;
  EXPECT_FALSE(gro_start(r, udp.data(), udp.size()));
  auto opts = tcp_packet(false, 100, 0x10);
  opts[0] = 0x46;
  EXPECT_FALSE(gro_start(r, opts.data(), opts.size()));
}

TEST(Offload, RunsStopAtTheirLimits) {
  auto super = tcp_packet(false, 64000, 0x10);
  auto segs = segments_of(super, false, 500);  // 128 segments
  GroRun r;
  ASSERT_TRUE(gro_start(r, segs[0].data(), segs[0].size()));
  std::size_t i = 1;
  while (i < segs.size() && gro_append(r, segs[i].data(), segs[i].size())) ++i;
  EXPECT_EQ(r.n, kMaxGroSegments);
  auto big = tcp_packet(false, 64000, 0x10);
  auto b = segments_of(big, false, 1400);
  ASSERT_TRUE(gro_start(r, b[0].data(), b[0].size()));
  for (i = 1; i < b.size() && gro_append(r, b[i].data(), b[i].size()); ++i) {
  }
  EXPECT_LE(r.hdr_len + r.payload, 65535u);
  EXPECT_EQ(i, b.size()) << "64000 bytes fit";
}

TEST(Offload, VnetHeaderRoundTrips) {
  VnetHdr h;
  h.flags = 1;
  h.gso_type = kGsoTcp6 | kGsoEcn;
  h.hdr_len = 72;
  h.gso_size = 1368;
  h.csum_start = 40;
  h.csum_offset = 16;
  std::uint8_t b[kVnetHdrLen];
  store_vnet_hdr(b, h);
  const VnetHdr g = load_vnet_hdr(b);
  EXPECT_EQ(g.flags, 1);
  EXPECT_EQ(g.gso_type, kGsoTcp6 | kGsoEcn);
  EXPECT_EQ(g.hdr_len, 72);
  EXPECT_EQ(g.gso_size, 1368);
  EXPECT_EQ(g.csum_start, 40);
  EXPECT_EQ(g.csum_offset, 16);
  EXPECT_EQ(b[4], 1368 & 0xff) << "little-endian fields";
}

}  // namespace
}  // namespace triglav::dp

namespace triglav::dp {
namespace {

// A SYN with the options given (padded to a multiple of 4 with end-of-options), its
// checksums valid.
std::vector<std::uint8_t> syn(bool v6, std::vector<std::uint8_t> opts, std::uint8_t flags = 0x02) {
  while (opts.size() % 4 != 0) opts.push_back(0);
  std::vector<std::uint8_t> p = tcp_packet(v6, 0, flags, opts.size());
  const std::size_t l4 = v6 ? 40 : 20;
  std::copy(opts.begin(), opts.end(), p.begin() + static_cast<long>(l4 + 20));
  if (v6) {
    const std::uint16_t c = l4_checksum(p.data(), 40, p.size(), 6);
    p[56] = static_cast<std::uint8_t>(c >> 8);
    p[57] = static_cast<std::uint8_t>(c);
  } else {
    fix_checksums(p);
  }
  return p;
}

unsigned mss_of(const std::vector<std::uint8_t>& p, std::size_t at) { return unsigned{p[at]} << 8 | p[at + 1]; }

TEST(MssClamp, LowersTheMssOfSynsAndKeepsTheChecksumValid) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const std::size_t l4 = v6 ? 40 : 20;
    // MSS 1460 right at the start, and after a no-op (odd offset: the value straddles words).
    for (std::vector<std::uint8_t> opts : {std::vector<std::uint8_t>{2, 4, 0x05, 0xb4, 4, 2, 1, 1},
                                           std::vector<std::uint8_t>{1, 2, 4, 0x05, 0xb4, 4, 2}}) {
      for (std::uint8_t flags : {std::uint8_t{0x02}, std::uint8_t{0x12}}) {  // SYN, SYN-ACK
        auto p = syn(v6, opts, flags);
        const std::size_t at = l4 + 20 + (opts[0] == 1 ? 3 : 2);
        ASSERT_EQ(mss_of(p, at), 1460u);
        EXPECT_TRUE(clamp_tcp_mss(p.data(), p.size(), 1240, false));
        EXPECT_EQ(mss_of(p, at), v6 ? 1180u : 1200u);
        EXPECT_TRUE(l4_valid(p, l4, 6));
        EXPECT_FALSE(clamp_tcp_mss(p.data(), p.size(), 1240, false));  // already small enough
        EXPECT_FALSE(clamp_tcp_mss(p.data(), p.size(), 1500, false));  // never raised
      }
    }
  }
}

TEST(MssClamp, PartialChecksumsStayAsTheyAre) {
  auto p = syn(false, {2, 4, 0x05, 0xb4});
  p[36] = 0x12, p[37] = 0x34;  // a pseudo header's sum: the options are not in it
  EXPECT_TRUE(clamp_tcp_mss(p.data(), p.size(), 1240, true));
  EXPECT_EQ(mss_of(p, 42), 1200u);
  EXPECT_EQ(p[36], 0x12);
  EXPECT_EQ(p[37], 0x34);
}

TEST(MssClamp, LeavesEverythingElseAlone) {
  auto ack = syn(false, {2, 4, 0x05, 0xb4}, 0x10);  // not a SYN
  auto before = ack;
  EXPECT_FALSE(clamp_tcp_mss(ack.data(), ack.size(), 1240, false));
  EXPECT_EQ(ack, before);
  auto none = syn(false, {4, 2, 1, 1});  // no MSS option
  EXPECT_FALSE(clamp_tcp_mss(none.data(), none.size(), 1240, false));
  auto bad = syn(false, {2, 9, 0x05, 0xb4});  // an option longer than the header
  before = bad;
  EXPECT_FALSE(clamp_tcp_mss(bad.data(), bad.size(), 1240, false));
  EXPECT_EQ(bad, before);
  auto zero = syn(false, {3, 0, 2, 4, 0x05, 0xb4});  // length 0 would loop forever
  EXPECT_FALSE(clamp_tcp_mss(zero.data(), zero.size(), 1240, false));
  auto udp = syn(false, {2, 4, 0x05, 0xb4});
  udp[9] = 17;
  EXPECT_FALSE(clamp_tcp_mss(udp.data(), udp.size(), 1240, false));
  auto frag = syn(false, {2, 4, 0x05, 0xb4});
  frag[7] = 8;  // a later fragment
  EXPECT_FALSE(clamp_tcp_mss(frag.data(), frag.size(), 1240, false));
  auto p = syn(true, {2, 4, 0x05, 0xb4});
  for (std::size_t n = 0; n < p.size(); ++n) {  // every truncation: no read past n
    std::vector<std::uint8_t> cut(p.begin(), p.begin() + static_cast<long>(n));
    EXPECT_FALSE(clamp_tcp_mss(cut.data(), cut.size(), 1240, false)) << n;
  }
  EXPECT_FALSE(clamp_tcp_mss(p.data(), p.size(), 50, false));  // no room for any segment
}

}  // namespace
}  // namespace triglav::dp
