#include "dataplane/wire.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <vector>

#include <cstring>

#include "tests/support/packets.h"

namespace triglav::dp {
namespace {

TEST(Header, RoundTripAndByteLayout) {
  Header h;
  h.type = PacketType::Data;
  h.flags = flag::kEncrypted | flag::kPriority;
  h.uplink = 3;
  h.aux = 0;
  h.receiver = 0x11223344;
  h.counter = 0x0102030405060708ull;
  std::uint8_t b[kHeaderLen];
  encode_header(h, b);
  const std::uint8_t expect[kHeaderLen] = {0x11, 0x50, 3, 0, 0x44, 0x33, 0x22, 0x11,
                                           8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_EQ(std::memcmp(b, expect, kHeaderLen), 0);
  Header back;
  ASSERT_EQ(decode_header(b, back), HeaderError::Ok);
  EXPECT_EQ(back, h);
}

TEST(Header, EveryTypeRoundTrips) {
  for (int t = 1; t <= 9; ++t) {
    Header h;
    h.type = static_cast<PacketType>(t);
    std::uint8_t b[kHeaderLen];
    encode_header(h, b);
    Header back;
    ASSERT_EQ(decode_header(b, back), HeaderError::Ok);
    EXPECT_EQ(back.type, h.type);
  }
}

TEST(Header, EveryShortLengthIsRejected) {
  std::uint8_t b[kHeaderLen];
  encode_header(Header{}, b);
  for (std::size_t len = 0; len < kHeaderLen; ++len) {
    Header h;
    EXPECT_EQ(decode_header({b, len}, h), HeaderError::TooShort) << len;
  }
}

TEST(Header, BadVersionAndType) {
  std::uint8_t b[kHeaderLen];
  encode_header(Header{}, b);
  Header h;
  for (int v = 0; v < 16; ++v) {
    if (v == kProtocolVersion) continue;
    b[0] = static_cast<std::uint8_t>(v << 4 | 1);
    EXPECT_EQ(decode_header(b, h), HeaderError::BadVersion) << v;
  }
  for (int t : {0, 10, 11, 15}) {
    b[0] = static_cast<std::uint8_t>(kProtocolVersion << 4 | t);
    EXPECT_EQ(decode_header(b, h), HeaderError::BadType) << t;
  }
}

TEST(Wire, SizesMatchTheProtocolDocument) {
  EXPECT_EQ(kDataOverhead, 36u);
  EXPECT_EQ(kInitLen, 140u);
  EXPECT_EQ(kCookieReplyLen, 72u);
  EXPECT_EQ(kResponseLen, 106u);
  EXPECT_EQ(kErrorLen, 16u);
  // Default MTU plus our overhead, UDP and IPv4 fit a 1500-byte path.
  EXPECT_LE(kDefaultMtu + kDataOverhead + 8 + 20, 1500);
  EXPECT_TRUE(is_transport(PacketType::Data));
  EXPECT_TRUE(is_transport(PacketType::Close));
  EXPECT_FALSE(is_transport(PacketType::Handshake));
  EXPECT_FALSE(is_transport(PacketType::Error));
}

TEST(Payloads, InitRoundTripAndLength) {
  InitPayload p;
  p.uplink = 4;
  p.sender_index = 0xdeadbeef;
  p.inner_ipv4_be = 0x0255000a;
  p.timestamp_ns = 1234567890123ull;
  p.client_id = 0x0102030405060708ull;
  p.ciphers = kOfferAes256Gcm;
  p.mode = kModeBenchmark | kModeDownload | (7 << kModeStreamsShift);  // 8 streams
  for (std::size_t i = 0; i < kClientKeyIdLen; ++i) p.key_id[i] = static_cast<std::uint8_t>(0xa0 + i);
  std::uint8_t b[kInitPayloadLen];
  encode_init_payload(p, b);
  InitPayload back;
  ASSERT_TRUE(decode_init_payload(b, back));
  EXPECT_EQ(back.uplink, 4);
  EXPECT_EQ(back.ciphers, kOfferAes256Gcm);
  EXPECT_EQ(b[2], 1) << "the offered ciphers at byte 2";
  EXPECT_EQ(b[3], 0x1f) << "benchmark, download, streams - 1 = 7 at byte 3";
  EXPECT_EQ(back.mode, p.mode);
  EXPECT_EQ(back.sender_index, 0xdeadbeefu);
  EXPECT_EQ(back.inner_ipv4_be, 0x0255000au);
  EXPECT_EQ(back.timestamp_ns, 1234567890123ull);
  EXPECT_EQ(back.client_id, 0x0102030405060708ull);
  EXPECT_EQ(back.key_id, p.key_id);
  EXPECT_EQ(b[20], 8);  // little-endian
  EXPECT_EQ(b[28], 0xa0);
  for (std::size_t len = 0; len < kInitPayloadLen + 3; ++len) {
    if (len == kInitPayloadLen) continue;
    std::uint8_t big[kInitPayloadLen + 3] = {};
    EXPECT_FALSE(decode_init_payload({big, len}, back)) << len;
  }
}

TEST(Payloads, ResponseRoundTripAndBounds) {
  ResponsePayload p;
  p.sender_index = 77;
  p.server_ipv4_be = 0x0155000a;
  p.prefix_len = 24;
  p.mtu = 1420;
  p.observed_port = 40123;
  p.observed_digest = {1, 2, 3, 4, 5, 6, 7, 8};
  p.client_ipv4_be = 0x0255000a;
  p.group_epoch = 0x1122334455667788ull;
  p.cipher = 1;
  p.ipv6_prefix = {0xfd, 1, 2, 3, 4, 5, 0, 0};
  std::uint8_t b[kResponsePayloadLen];
  encode_response_payload(p, b);
  ResponsePayload back;
  ASSERT_TRUE(decode_response_payload(b, back));
  EXPECT_EQ(back.cipher, 1);
  EXPECT_EQ(b[9], 1) << "the chosen cipher at byte 9";
  EXPECT_EQ(back.sender_index, 77u);
  EXPECT_EQ(back.prefix_len, 24);
  EXPECT_EQ(back.mtu, 1420);
  EXPECT_EQ(back.observed_port, 40123);
  EXPECT_EQ(back.observed_digest, p.observed_digest);
  EXPECT_EQ(back.client_ipv4_be, 0x0255000au);
  EXPECT_EQ(back.group_epoch, 0x1122334455667788ull);
  EXPECT_EQ(b[26], 0x88);  // little-endian
  EXPECT_EQ(back.ipv6_prefix, p.ipv6_prefix);
  EXPECT_EQ(b[34], 0xfd) << "the IPv6 prefix at byte 34";
  EXPECT_FALSE(back.benchmark);
  EXPECT_FALSE(back.checksum_partial);
  EXPECT_FALSE(back.striped);
  EXPECT_FALSE(back.fragments);
  EXPECT_FALSE(back.repair);
  // The flags beside the cipher in byte 9: bit 7 benchmark, bit 6 checksum_partial, bit 5
  // striped, bit 4 fragments, bit 3 repair.
  const struct {
    bool ResponsePayload::*flag;
    std::uint8_t byte9;
  } flags[] = {{&ResponsePayload::benchmark, 0x81},
               {&ResponsePayload::checksum_partial, 0xc1},
               {&ResponsePayload::striped, 0xe1},
               {&ResponsePayload::fragments, 0xf1},
               {&ResponsePayload::repair, 0xf9}};
  for (const auto& f : flags) {
    p.*f.flag = true;
    encode_response_payload(p, b);
    EXPECT_EQ(b[9], f.byte9);
    ASSERT_TRUE(decode_response_payload(b, back));
    EXPECT_TRUE(back.*f.flag);
    EXPECT_TRUE(back.benchmark);
    EXPECT_EQ(back.cipher, 1);
  }
  b[9] = 2;  // no such cipher
  EXPECT_FALSE(decode_response_payload(b, back));
  b[9] = 0;
  b[8] = 33;
  EXPECT_FALSE(decode_response_payload(b, back));
  EXPECT_FALSE(decode_response_payload({b, kResponsePayloadLen - 1}, back));
}

TEST(Wire, NackBody) {
  std::uint8_t b[kNackLen];
  encode_nack({.origin = 3, .base = 0x01020304, .bits = 0x8000000000000005ull}, b);
  EXPECT_EQ(b[0], 3);
  EXPECT_EQ(b[1], 0x04);  // little-endian
  EXPECT_EQ(b[5], 0x05);
  EXPECT_EQ(b[12], 0x80);
  Nack n;
  ASSERT_TRUE(decode_nack(b, sizeof b, n));
  EXPECT_EQ(n.origin, 3);
  EXPECT_EQ(n.base, 0x01020304u);
  EXPECT_EQ(n.bits, 0x8000000000000005ull);
  EXPECT_FALSE(decode_nack(b, sizeof b - 1, n));
}

// A packet sent again carries its first sender's numbers: that sender, in the top four
// bits of aux, names them; any other Data packet's are its counter's sender's.
TEST(Wire, DataSenderOfAPacketSentAgain) {
  Header h;
  h.counter = std::uint64_t{2} << kSenderShift | 99;
  h.aux = kDataStriped;
  EXPECT_EQ(data_sender(h, true), 2u);
  h.aux = kDataStriped | kDataResent | 5 << kDataOriginShift;
  EXPECT_EQ(data_sender(h, true), 5u);
  EXPECT_TRUE(is_resent(h, true));
  EXPECT_EQ(data_sender(h, false), 2u) << "from a peer that did not agree to repair, the bit means nothing";
  EXPECT_FALSE(is_resent(h, false));
  h.aux = kDataResent | 5 << kDataOriginShift;  // not striped: not a repair
  EXPECT_EQ(data_sender(h, true), 2u);
}

TEST(Wire, PathMtuMessage) {
  std::uint8_t b[kPathMtuLen];
  encode_path_mtu(3, 1246, b);
  EXPECT_EQ(b[0], 3);  // ControlKind::PathMtu
  EXPECT_EQ(b[1], 3);
  EXPECT_EQ(b[2], 1246 & 0xff);  // little-endian
  EXPECT_EQ(b[3], 1246 >> 8);
  std::uint8_t id = 0;
  std::uint16_t size = 0;
  ASSERT_TRUE(decode_path_mtu(b, sizeof b, id, size));
  EXPECT_EQ(id, 3);
  EXPECT_EQ(size, 1246);
  EXPECT_FALSE(decode_path_mtu(b, sizeof b - 1, id, size));
  std::uint16_t mask = 0;
  EXPECT_FALSE(decode_stripe_uplinks(b, sizeof b, mask)) << "another kind";
  b[0] = static_cast<std::uint8_t>(ControlKind::StripeUplinks);
  EXPECT_FALSE(decode_path_mtu(b, sizeof b, id, size));
}

// An IPv4 packet claiming `total` bytes in a buffer of `buffer`.
std::vector<std::uint8_t> ipv4_packet(std::size_t total, std::size_t buffer) {
  std::vector<std::uint8_t> p(std::max<std::size_t>(buffer, 20), 0);
  test::write_ipv4(p.data(), total, {});
  p.resize(buffer);
  return p;
}

TEST(Probe, AnyLengthInRangeCarriesAMacOverAllOfIt) {
  std::array<std::uint8_t, 32> key{}, other{};
  key[0] = 7;
  other[0] = 8;
  for (std::size_t n : {kProbeMinLen, std::size_t{1400}, std::size_t{1473}, kProbeMaxLen}) {
    std::vector<std::uint8_t> p(n);
    make_probe(p, 0x01020304, key);
    Header h;
    ASSERT_EQ(decode_header(p, h), HeaderError::Ok);
    EXPECT_EQ(h.type, PacketType::Handshake);
    EXPECT_EQ(h.aux, kHandshakeProbe);
    EXPECT_EQ(h.counter, 0x01020304u);
    EXPECT_TRUE(probe_ok(p, key)) << n;
    EXPECT_FALSE(probe_ok(p, other)) << n;
    p[n / 2] ^= 1;  // the padding is covered too
    EXPECT_FALSE(probe_ok(p, key)) << n;
  }
  std::vector<std::uint8_t> big(kProbeMaxLen + 1);
  make_probe(big, 1, key);  // refused: left as it was
  EXPECT_FALSE(probe_ok(big, key));
  std::vector<std::uint8_t> init(kInitLen);
  EXPECT_FALSE(probe_ok(init, key));  // zeros: not a probe
}

TEST(Probe, EchoNamesTheLengthAndIsSmallerThanAnyProbe) {
  static_assert(kProbeEchoLen < kProbeMinLen, "an echo never amplifies");
  std::array<std::uint8_t, 32> key{};
  key[5] = 1;
  auto e = probe_echo(42, 1472, key);
  EXPECT_EQ(open_probe_echo(e, 42, key), 1472u);
  EXPECT_EQ(open_probe_echo(e, 43, key), std::nullopt);  // another probe's
  std::array<std::uint8_t, 32> other{};
  EXPECT_EQ(open_probe_echo(e, 42, other), std::nullopt);
  e[8] ^= 1;  // a forged length
  EXPECT_EQ(open_probe_echo(e, 42, key), std::nullopt);
}

TEST(InnerPacket, Ipv4AndIpv6Lengths) {
  auto p = ipv4_packet(60, 60);
  EXPECT_EQ(inner_packet_length(p.data(), p.size()), 60u);
  p = ipv4_packet(60, 64);  // trailing bytes are ignored
  EXPECT_EQ(inner_packet_length(p.data(), p.size()), 60u);
  p = ipv4_packet(61, 60);  // claims more than it has
  EXPECT_EQ(inner_packet_length(p.data(), p.size()), 0u);
  p = ipv4_packet(19, 60);  // shorter than its header
  EXPECT_EQ(inner_packet_length(p.data(), p.size()), 0u);
  p = ipv4_packet(60, 60);
  p[0] = 0x44;  // IHL 4 words < 20 bytes
  EXPECT_EQ(inner_packet_length(p.data(), p.size()), 0u);
  for (std::size_t len = 0; len < 20; ++len)
    EXPECT_EQ(inner_packet_length(p.data(), len), 0u) << len;

  std::vector<std::uint8_t> v6(48, 0);
  v6[0] = 0x60;
  v6[5] = 8;
  EXPECT_EQ(inner_packet_length(v6.data(), v6.size()), 48u);
  EXPECT_EQ(inner_packet_length(v6.data(), 47), 0u);
  EXPECT_EQ(inner_packet_length(v6.data(), 39), 0u);
  v6[0] = 0x50;  // neither 4 nor 6
  EXPECT_EQ(inner_packet_length(v6.data(), v6.size()), 0u);
}

TEST(Counter, SenderBitsPartitionTheNonceSpace) {
  const std::uint64_t w3 = std::uint64_t{3} << kSenderShift | 5;
  const std::uint64_t ctl = std::uint64_t{kControlSender} << kSenderShift | 5;
  EXPECT_NE(w3, ctl);
  EXPECT_EQ(w3 >> kSenderShift, 3u);
  EXPECT_EQ(w3 & kCounterMask, 5u);
  EXPECT_LT(kMaxWorkers, kControlSender + 1);
  // A wrapping local counter never leaks into the sender bits.
  EXPECT_EQ((kCounterMask + 1) & kCounterMask, 0u);
}

}  // namespace
TEST(Wire, GroSegmentsCoverTheBufferOnce) {
  auto segs = [](std::size_t total, std::size_t seg) {
    std::vector<std::pair<std::size_t, std::size_t>> out;
    for_each_segment(total, seg, [&](std::size_t off, std::size_t len) { out.emplace_back(off, len); });
    return out;
  };
  using V = std::vector<std::pair<std::size_t, std::size_t>>;
  EXPECT_EQ(segs(0, 0), (V{{0, 0}}));        // an empty datagram, once
  EXPECT_EQ(segs(100, 0), (V{{0, 100}}));    // no GRO
  EXPECT_EQ(segs(100, 100), (V{{0, 100}}));
  EXPECT_EQ(segs(100, 400), (V{{0, 100}}));  // a segment size beyond the buffer
  EXPECT_EQ(segs(100, 40), (V{{0, 40}, {40, 40}, {80, 20}}));
  EXPECT_EQ(segs(120, 40), (V{{0, 40}, {40, 40}, {80, 40}}));
  for (std::size_t total = 0; total < 300; total += 7)
    for (std::size_t seg = 0; seg < 80; seg += 3) {
      std::size_t covered = 0, next = 0;
      for (auto [off, len] : segs(total, seg)) {
        EXPECT_EQ(off, next);
        EXPECT_LE(off + len, total);
        covered += len;
        next = off + len;
      }
      EXPECT_EQ(covered, total) << total << " " << seg;
    }
}

}  // namespace triglav::dp
