#include "dataplane/offload.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace triglav::dp {
namespace {

constexpr std::uint8_t kProtoTcp = 6, kProtoUdp = 17;
constexpr std::uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpPsh = 0x08, kTcpCwr = 0x80;

std::uint16_t be16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
void put_be16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
std::uint32_t be32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
void put_be32(std::uint8_t* p, std::uint32_t v) noexcept {
  put_be16(p, static_cast<std::uint16_t>(v >> 16));
  put_be16(p + 2, static_cast<std::uint16_t>(v));
}

// The pseudo header's sum (addresses, protocol, length) for the IP header at ip.
std::uint16_t pseudo_sum(const std::uint8_t* ip, std::size_t l4_len, std::uint8_t proto) noexcept {
  std::uint8_t tail[4] = {0, proto, static_cast<std::uint8_t>(l4_len >> 8), static_cast<std::uint8_t>(l4_len)};
  std::uint16_t s = (ip[0] >> 4) == 6 ? csum_add(0, ip + 8, 32) : csum_add(0, ip + 12, 8);
  if ((ip[0] >> 4) == 6) {  // IPv6: the length is 32 bits wide
    std::uint8_t len32[4] = {static_cast<std::uint8_t>(l4_len >> 24), static_cast<std::uint8_t>(l4_len >> 16),
                             static_cast<std::uint8_t>(l4_len >> 8), static_cast<std::uint8_t>(l4_len)};
    s = csum_add(s, len32, 4);
    tail[2] = tail[3] = 0;
  }
  return csum_add(s, tail, 4);
}

// The checksum field for a one's-complement sum; UDP sends a computed 0 as all ones (0
// there means "no checksum").
std::uint16_t finish_checksum(std::uint16_t sum, std::uint8_t proto) noexcept {
  const auto c = static_cast<std::uint16_t>(~sum);
  return proto == kProtoUdp && c == 0 ? 0xffff : c;
}

}  // namespace

VnetHdr load_vnet_hdr(const std::uint8_t* p) noexcept {
  VnetHdr h;
  h.flags = p[0];
  h.gso_type = p[1];
  std::memcpy(&h.hdr_len, p + 2, 2);
  std::memcpy(&h.gso_size, p + 4, 2);
  std::memcpy(&h.csum_start, p + 6, 2);
  std::memcpy(&h.csum_offset, p + 8, 2);
  return h;
}

void store_vnet_hdr(std::uint8_t* p, const VnetHdr& h) noexcept {
  p[0] = h.flags;
  p[1] = h.gso_type;
  std::memcpy(p + 2, &h.hdr_len, 2);
  std::memcpy(p + 4, &h.gso_size, 2);
  std::memcpy(p + 6, &h.csum_start, 2);
  std::memcpy(p + 8, &h.csum_offset, 2);
}

std::uint16_t csum_add(std::uint16_t sum, const std::uint8_t* p, std::size_t n) noexcept {
  // A ones' complement sum does not depend on byte order (RFC 1071): add the data as
  // native 64-bit words, count the carries out, fold to 16 bits, and put the result in
  // network order at the end (on little-endian hosts; big-endian ones need no swap).
  constexpr bool kLittle = std::endian::native == std::endian::little;
  auto swap16 = [](std::uint64_t v) { return static_cast<std::uint16_t>(kLittle ? (v >> 8 | v << 8) : v); };
  std::uint64_t acc = swap16(sum), carries = 0;
  auto add = [&](std::uint64_t w) {
    acc += w;
    carries += acc < w;
  };
  for (; n >= 32; p += 32, n -= 32) {
    std::uint64_t w[4];
    std::memcpy(w, p, sizeof w);
    add(w[0]);
    add(w[1]);
    add(w[2]);
    add(w[3]);
  }
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    add(w);
  }
  if (n > 0) {  // an odd last byte is the high half of its 16-bit word, padded with zero
    std::uint8_t tail[8] = {};
    std::memcpy(tail, p, n);
    std::uint64_t w;
    std::memcpy(&w, tail, 8);
    add(w);
  }
  std::uint64_t folded = (acc & 0xffffffffu) + (acc >> 32) + carries;
  while (folded >> 16) folded = (folded & 0xffff) + (folded >> 16);
  return swap16(folded);
}

namespace {

// Completes a checksum left partial (NEEDS_CSUM): the field at start + offset holds the
// pseudo header's sum, so the sum from start to the end, field included, is the checksum.
void complete_checksum_at(std::uint8_t* pkt, std::size_t len, std::size_t start, std::size_t offset,
                          std::uint8_t proto) noexcept {
  put_be16(pkt + start + offset, finish_checksum(csum_add(0, pkt + start, len - start), proto));
}

}  // namespace

std::uint16_t ipv4_header_checksum(const std::uint8_t* ip, std::size_t ihl) noexcept {
  std::uint16_t s = csum_add(0, ip, 10);
  s = csum_add(s, ip + 12, ihl - 12);
  return static_cast<std::uint16_t>(~s);
}

std::uint16_t l4_checksum(const std::uint8_t* ip, std::size_t l4_off, std::size_t len, std::uint8_t proto) noexcept {
  const std::size_t l4_len = len - l4_off;
  const std::size_t field = l4_off + (proto == kProtoTcp ? 16 : 6);
  std::uint16_t s = pseudo_sum(ip, l4_len, proto);
  s = csum_add(s, ip + l4_off, field - l4_off);
  s = csum_add(s, ip + field + 2, len - field - 2);
  return finish_checksum(s, proto);
}

bool clamp_tcp_mss(std::uint8_t* pkt, std::size_t len, std::size_t max_packet, bool partial) noexcept {
  std::size_t l4 = 0, ip_hdrs = 0;
  if (len >= 20 && (pkt[0] >> 4) == 4) {
    l4 = std::size_t{pkt[0] & 0x0fu} * 4;
    const bool fragment = (be16(pkt + 6) & 0x3fff) != 0;  // MF or an offset: no TCP header here
    if (pkt[9] != kProtoTcp || l4 < 20 || fragment || be16(pkt + 2) != len) return false;
    ip_hdrs = 40;
  } else if (len >= 40 && (pkt[0] >> 4) == 6) {
    if (pkt[6] != kProtoTcp || std::size_t{be16(pkt + 4)} + 40 != len) return false;  // extension headers: left alone
    l4 = 40;
    ip_hdrs = 60;
  } else {
    return false;
  }
  if (len < l4 + 20 || max_packet <= ip_hdrs) return false;
  std::uint8_t* tcp = pkt + l4;
  const std::size_t doff = static_cast<std::size_t>(tcp[12] >> 4) * 4;
  if ((tcp[13] & kTcpSyn) == 0 || doff < 20 || l4 + doff > len) return false;
  const std::size_t want = std::min<std::size_t>(max_packet - ip_hdrs, 0xffff);
  for (std::size_t o = 20; o < doff;) {
    const std::uint8_t kind = tcp[o];
    if (kind == 0) break;  // end of options
    if (kind == 1) {       // no-op
      ++o;
      continue;
    }
    if (o + 1 >= doff || tcp[o + 1] < 2 || o + tcp[o + 1] > doff) break;  // malformed: leave it
    if (kind == 2 && tcp[o + 1] == 4) {
      if (be16(tcp + o + 2) <= want) return false;
      put_be16(tcp + o + 2, static_cast<std::uint16_t>(want));
      if (!partial) put_be16(tcp + 16, l4_checksum(pkt, l4, len, kProtoTcp));
      return true;
    }
    o += tcp[o + 1];
  }
  return false;
}

TunPacket classify_tun_packet(const VnetHdr& h, std::uint8_t* pkt, std::size_t len, GsoPlan& plan) noexcept {
  const std::uint8_t gso = h.gso_type & static_cast<std::uint8_t>(~kGsoEcn);
  if (gso == kGsoNone) {
    if (h.flags & kVnetNeedsCsum) {
      const std::size_t at = std::size_t{h.csum_start} + h.csum_offset;
      if (h.csum_start >= len || at + 2 > len) return TunPacket::Malformed;
      // The field holds the pseudo header's sum already: summing from csum_start over
      // the rest, field included, gives the checksum.
      const bool udp = len >= 20 && (((pkt[0] >> 4) == 4 && pkt[9] == kProtoUdp) || ((pkt[0] >> 4) == 6 && pkt[6] == kProtoUdp));
      complete_checksum_at(pkt, len, h.csum_start, h.csum_offset, udp ? kProtoUdp : kProtoTcp);
    }
    return TunPacket::Plain;
  }
  if (gso != kGsoTcp4 && gso != kGsoTcp6 && gso != kGsoUdpL4) return TunPacket::Unsupported;
  plan = GsoPlan{};
  plan.udp = gso == kGsoUdpL4;
  if (len < 20) return TunPacket::Malformed;
  plan.v6 = plan.udp ? (pkt[0] >> 4) == 6 : gso == kGsoTcp6;
  const std::uint8_t proto = plan.udp ? kProtoUdp : kProtoTcp;
  if (plan.v6) {
    if ((pkt[0] >> 4) != 6 || pkt[6] != proto) return TunPacket::Malformed;  // no extension headers
    plan.ip_len = 40;
  } else {
    if ((pkt[0] >> 4) != 4 || pkt[9] != proto) return TunPacket::Malformed;
    plan.ip_len = std::size_t{pkt[0] & 0x0fu} * 4;
    if (plan.ip_len < 20) return TunPacket::Malformed;
  }
  if (len < plan.ip_len + (plan.udp ? 8 : 20)) return TunPacket::Malformed;
  const std::size_t l4_len = plan.udp ? 8 : static_cast<std::size_t>(pkt[plan.ip_len + 12] >> 4) * 4;
  if (l4_len < (plan.udp ? 8u : 20u)) return TunPacket::Malformed;
  plan.hdr_len = plan.ip_len + l4_len;
  if (len <= plan.hdr_len || h.gso_size == 0) return TunPacket::Malformed;
  plan.mss = h.gso_size;
  plan.payload = len - plan.hdr_len;
  const std::size_t n = (plan.payload + plan.mss - 1) / plan.mss;
  if (n > kMaxGsoSegmentsIn) return TunPacket::Malformed;
  plan.segments = static_cast<unsigned>(n);
  return TunPacket::Split;
}

std::size_t write_segment(const GsoPlan& plan, const std::uint8_t* pkt, unsigned i, std::uint8_t* dst,
                          Checksum sum) noexcept {
  const std::size_t off = std::size_t{i} * plan.mss;
  const std::size_t seg = std::min(plan.mss, plan.payload - off);
  const std::size_t len = plan.hdr_len + seg;
  std::memcpy(dst, pkt, plan.hdr_len);
  std::memcpy(dst + plan.hdr_len, pkt + plan.hdr_len + off, seg);
  if (plan.v6) {
    put_be16(dst + 4, static_cast<std::uint16_t>(len - 40));
  } else {
    put_be16(dst + 2, static_cast<std::uint16_t>(len));
    put_be16(dst + 4, static_cast<std::uint16_t>(be16(pkt + 4) + i));  // the id counts up
    put_be16(dst + 10, 0);
    put_be16(dst + 10, ipv4_header_checksum(dst, plan.ip_len));
  }
  if (plan.udp) {
    put_be16(dst + plan.ip_len + 4, static_cast<std::uint16_t>(len - plan.ip_len));
    put_be16(dst + plan.ip_len + 6, sum == Checksum::Partial ? pseudo_sum(dst, len - plan.ip_len, kProtoUdp)
                                                             : l4_checksum(dst, plan.ip_len, len, kProtoUdp));
    return len;
  }
  std::uint8_t* tcp = dst + plan.ip_len;
  put_be32(tcp + 4, be32(pkt + plan.ip_len + 4) + static_cast<std::uint32_t>(off));
  const bool last = i + 1 == plan.segments;
  if (!last) tcp[13] &= static_cast<std::uint8_t>(~(kTcpFin | kTcpPsh));
  if (i != 0) tcp[13] &= static_cast<std::uint8_t>(~kTcpCwr);
  put_be16(tcp + 16, sum == Checksum::Partial ? pseudo_sum(dst, len - plan.ip_len, kProtoTcp)
                                              : l4_checksum(dst, plan.ip_len, len, kProtoTcp));
  return len;
}

namespace {

// Where a TCP or UDP header starts, and where its checksum field is in it.
bool locate_l4(const std::uint8_t* pkt, std::size_t len, std::size_t& start, std::size_t& field,
               std::uint8_t& proto) noexcept {
  if (len < 20) return false;
  if ((pkt[0] >> 4) == 4) {
    start = std::size_t{pkt[0] & 0x0fu} * 4;
    proto = pkt[9];
    if (start < 20 || (be16(pkt + 6) & 0x3fff) != 0) return false;  // fragments carry no whole L4 header
  } else if ((pkt[0] >> 4) == 6) {
    start = 40;
    proto = pkt[6];
  } else {
    return false;
  }
  if (proto != kProtoTcp && proto != kProtoUdp) return false;
  field = proto == kProtoTcp ? 16 : 6;
  return start + field + 2 <= len && start + (proto == kProtoTcp ? 20u : 8u) <= len;
}

}  // namespace

bool partial_checksum_hdr(const std::uint8_t* pkt, std::size_t len, VnetHdr& h) noexcept {
  std::size_t start = 0, field = 0;
  std::uint8_t proto = 0;
  if (!locate_l4(pkt, len, start, field, proto)) return false;
  h = VnetHdr{};
  h.flags = kVnetNeedsCsum;
  h.csum_start = static_cast<std::uint16_t>(start);
  h.csum_offset = static_cast<std::uint16_t>(field);
  return true;
}

void complete_partial_checksum(std::uint8_t* pkt, std::size_t len) noexcept {
  std::size_t start = 0, field = 0;
  std::uint8_t proto = 0;
  if (!locate_l4(pkt, len, start, field, proto)) return;
  complete_checksum_at(pkt, len, start, field, proto);
}

}  // namespace triglav::dp

namespace triglav::dp {
namespace {

constexpr std::uint8_t kTcpAck = 0x10;

// The header bytes that must match for two segments to continue one flow (IPv4: TOS,
// flags and fragment offset, TTL, protocol, addresses; IPv6: traffic class and flow
// label, next header, hop limit, addresses; TCP: ports, then ack, data offset, window
// and options; flags are checked separately).
bool same_flow(const GroRun& r, const std::uint8_t* q, std::size_t len) noexcept {
  const std::uint8_t* p = r.first;
  if (len < r.hdr_len || (q[0] >> 4) != (p[0] >> 4)) return false;
  if (r.v6) {
    if (std::memcmp(p, q, 4) != 0 || std::memcmp(p + 6, q + 6, 34) != 0) return false;
  } else {
    if (q[0] != p[0] || q[1] != p[1] || std::memcmp(p + 6, q + 6, 4) != 0 || std::memcmp(p + 12, q + 12, 8) != 0)
      return false;
  }
  const std::uint8_t* a = p + r.ip_len;
  const std::uint8_t* b = q + r.ip_len;
  return std::memcmp(a, b, 4) == 0 && std::memcmp(a + 8, b + 8, 5) == 0 && std::memcmp(a + 14, b + 14, 2) == 0 &&
         std::memcmp(a + 18, b + 18, r.hdr_len - r.ip_len - 18) == 0;
}

// A received segment's IPv4 header checksum (when IPv4) and TCP checksum verify: a
// joined super-packet leaves with NEEDS_CSUM (the kernel fills the checksum in), so a
// corrupted segment must never be joined, or it would come out with a valid one.
bool checksums_ok(const std::uint8_t* p, std::size_t ip_len, std::size_t len) noexcept {
  if (ip_len == 20 && csum_add(0, p, 20) != 0xffff) return false;
  return csum_add(pseudo_sum(p, len - ip_len, kProtoTcp), p + ip_len, len - ip_len) == 0xffff;
}

}  // namespace

bool gro_start(GroRun& r, std::uint8_t* pkt, std::size_t len, bool partial) noexcept {
  r = GroRun{};
  if (len < 40) return false;
  const unsigned ver = pkt[0] >> 4;
  if (ver == 4) {
    if (pkt[0] != 0x45 || pkt[9] != kProtoTcp || (be16(pkt + 6) & 0x3fff) != 0 || be16(pkt + 2) != len) return false;
    r.ip_len = 20;
  } else if (ver == 6) {
    if (len < 60 || pkt[6] != kProtoTcp || be16(pkt + 4) + 40u != len) return false;
    r.ip_len = 40;
    r.v6 = true;
  } else {
    return false;
  }
  const std::size_t tcp_len = static_cast<std::size_t>(pkt[r.ip_len + 12] >> 4) * 4;
  const std::uint8_t flags = pkt[r.ip_len + 13];
  if (tcp_len < 20 || r.ip_len + tcp_len >= len || (flags & ~kTcpPsh) != kTcpAck) return false;
  if (!partial && !checksums_ok(pkt, r.ip_len, len)) return false;
  r.first = pkt;
  r.first_partial = partial;
  r.first_len = len;
  r.hdr_len = r.ip_len + tcp_len;
  r.mss = len - r.hdr_len;
  r.payload = r.mss;
  r.next_seq = be32(pkt + r.ip_len + 4) + static_cast<std::uint32_t>(r.mss);
  r.n = 1;
  r.closed = (flags & kTcpPsh) != 0;
  return true;
}

bool gro_append(GroRun& r, const std::uint8_t* pkt, std::size_t len, bool partial) noexcept {
  if (r.n == 0 || r.closed || r.n >= kMaxGroSegments || len <= r.hdr_len) return false;
  const std::size_t seg = len - r.hdr_len;
  if (seg > r.mss || r.hdr_len + r.payload + seg > 65535) return false;
  if (r.v6 ? be16(pkt + 4) + 40u != len : be16(pkt + 2) != len) return false;
  if (!same_flow(r, pkt, len) || be32(pkt + r.ip_len + 4) != r.next_seq) return false;
  const std::uint8_t flags = pkt[r.ip_len + 13];
  if ((flags & ~kTcpPsh) != kTcpAck || (!partial && !checksums_ok(pkt, r.ip_len, len))) return false;
  r.payload += seg;
  r.next_seq += static_cast<std::uint32_t>(seg);
  ++r.n;
  r.closed = seg < r.mss || (flags & kTcpPsh) != 0;
  if (flags & kTcpPsh) r.first[r.ip_len + 13] |= kTcpPsh;
  return true;
}

VnetHdr gro_finish(GroRun& r) noexcept {
  std::uint8_t* p = r.first;
  const std::size_t total = r.hdr_len + r.payload;
  if (r.v6) {
    put_be16(p + 4, static_cast<std::uint16_t>(total - 40));
  } else {
    put_be16(p + 2, static_cast<std::uint16_t>(total));
    put_be16(p + 10, 0);
    put_be16(p + 10, ipv4_header_checksum(p, r.ip_len));
  }
  put_be16(p + r.ip_len + 16, pseudo_sum(p, total - r.ip_len, kProtoTcp));
  VnetHdr h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = r.v6 ? kGsoTcp6 : kGsoTcp4;
  h.hdr_len = static_cast<std::uint16_t>(r.hdr_len);
  h.gso_size = static_cast<std::uint16_t>(r.mss);
  h.csum_start = static_cast<std::uint16_t>(r.ip_len);
  h.csum_offset = 16;
  return h;
}

}  // namespace triglav::dp
