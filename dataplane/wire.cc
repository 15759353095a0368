#include "dataplane/wire.h"

#include "crypto/mac.h"

#include <cstring>

namespace triglav::dp {

void encode_header(const Header& h, std::uint8_t out[kHeaderLen]) noexcept {
  out[0] = static_cast<std::uint8_t>(kProtocolVersion << 4 | static_cast<std::uint8_t>(h.type));
  out[1] = h.flags;
  out[2] = h.uplink;
  out[3] = h.aux;
  store_le32(out + 4, h.receiver);
  store_le64(out + 8, h.counter);
}

HeaderError decode_header(std::span<const std::uint8_t> pkt, Header& out) noexcept {
  if (pkt.size() < kHeaderLen) return HeaderError::TooShort;
  if ((pkt[0] >> 4) != kProtocolVersion) return HeaderError::BadVersion;
  const std::uint8_t t = pkt[0] & 0x0f;
  if (t < static_cast<std::uint8_t>(PacketType::Data) ||
      t > static_cast<std::uint8_t>(PacketType::Error))
    return HeaderError::BadType;
  out.type = static_cast<PacketType>(t);
  out.flags = pkt[1];
  out.uplink = pkt[2];
  out.aux = pkt[3];
  out.receiver = load_le32(pkt.data() + 4);
  out.counter = load_le64(pkt.data() + 8);
  return HeaderError::Ok;
}

void stamp_initiation(std::span<std::uint8_t, kInitLen> init, const std::array<std::uint8_t, 32>& mac1_key,
                      const std::array<std::uint8_t, 16>* cookie) noexcept {
  constexpr std::size_t mac1_at = kInitLen - kInitMacsLen, mac2_at = kInitLen - 16;
  const crypto::Mac m1 = crypto::keyed_mac(mac1_key, init.first(mac1_at));
  std::memcpy(init.data() + mac1_at, m1.data(), m1.size());
  if (cookie == nullptr) {
    std::memset(init.data() + mac2_at, 0, 16);
    return;
  }
  const crypto::Mac m2 = crypto::keyed_mac(*cookie, init.first(mac2_at));
  std::memcpy(init.data() + mac2_at, m2.data(), m2.size());
}

bool initiation_mac1_ok(std::span<const std::uint8_t> pkt, const std::array<std::uint8_t, 32>& mac1_key) noexcept {
  constexpr std::size_t mac1_at = kInitLen - kInitMacsLen;
  if (pkt.size() != kInitLen) return false;
  const crypto::Mac m1 = crypto::keyed_mac(mac1_key, pkt.first(mac1_at));
  return crypto::mac_equal(m1.data(), pkt.data() + mac1_at);
}

void make_probe(std::span<std::uint8_t> out, std::uint32_t id, const std::array<std::uint8_t, 32>& mac1_key) noexcept {
  if (out.size() < kProbeMinLen || out.size() > kProbeMaxLen) return;
  Header h;
  h.type = PacketType::Handshake;
  h.aux = kHandshakeProbe;
  h.counter = id;
  encode_header(h, out.data());
  const std::size_t mac_at = out.size() - crypto::kMacLen;
  std::memset(out.data() + kHeaderLen, 0, mac_at - kHeaderLen);
  const crypto::Mac m = crypto::keyed_mac(mac1_key, out.first(mac_at));
  std::memcpy(out.data() + mac_at, m.data(), m.size());
}

bool probe_ok(std::span<const std::uint8_t> pkt, const std::array<std::uint8_t, 32>& mac1_key) noexcept {
  Header h;
  if (pkt.size() < kProbeMinLen || pkt.size() > kProbeMaxLen || decode_header(pkt, h) != HeaderError::Ok ||
      h.type != PacketType::Handshake || h.aux != kHandshakeProbe)
    return false;
  const std::size_t mac_at = pkt.size() - crypto::kMacLen;
  const crypto::Mac m = crypto::keyed_mac(mac1_key, pkt.first(mac_at));
  return crypto::mac_equal(m.data(), pkt.data() + mac_at);
}

std::array<std::uint8_t, kProbeEchoLen> probe_echo(std::uint32_t id, std::uint32_t len,
                                                   const std::array<std::uint8_t, 32>& mac1_key) noexcept {
  std::array<std::uint8_t, kProbeEchoLen> out{};
  Header h;
  h.type = PacketType::Handshake;
  h.aux = kHandshakeProbeEcho;
  h.receiver = id;
  h.counter = len;
  encode_header(h, out.data());
  const crypto::Mac m = crypto::keyed_mac(mac1_key, std::span<const std::uint8_t>(out.data(), kHeaderLen));
  std::memcpy(out.data() + kHeaderLen, m.data(), m.size());
  return out;
}

std::optional<std::uint32_t> open_probe_echo(std::span<const std::uint8_t> pkt, std::uint32_t id,
                                             const std::array<std::uint8_t, 32>& mac1_key) noexcept {
  Header h;
  if (pkt.size() != kProbeEchoLen || decode_header(pkt, h) != HeaderError::Ok || h.type != PacketType::Handshake ||
      h.aux != kHandshakeProbeEcho || h.receiver != id)
    return std::nullopt;
  const crypto::Mac m = crypto::keyed_mac(mac1_key, pkt.first(kHeaderLen));
  if (!crypto::mac_equal(m.data(), pkt.data() + kHeaderLen)) return std::nullopt;
  return static_cast<std::uint32_t>(h.counter);
}

void encode_init_payload(const InitPayload& p, std::uint8_t out[kInitPayloadLen]) noexcept {
  out[0] = p.version;
  out[1] = p.uplink;
  out[2] = p.ciphers;
  out[3] = p.mode;
  store_le32(out + 4, p.sender_index);
  std::memcpy(out + 8, &p.inner_ipv4_be, 4);
  store_le64(out + 12, p.timestamp_ns);
  store_le64(out + 20, p.client_id);
  std::memcpy(out + 28, p.key_id.data(), kClientKeyIdLen);
}

bool decode_init_payload(std::span<const std::uint8_t> in, InitPayload& out) noexcept {
  if (in.size() != kInitPayloadLen) return false;
  out.version = in[0];
  out.uplink = in[1];
  out.ciphers = in[2];
  out.mode = in[3];
  out.sender_index = load_le32(in.data() + 4);
  std::memcpy(&out.inner_ipv4_be, in.data() + 8, 4);
  out.timestamp_ns = load_le64(in.data() + 12);
  out.client_id = load_le64(in.data() + 20);
  std::memcpy(out.key_id.data(), in.data() + 28, kClientKeyIdLen);
  return true;
}

void encode_response_payload(const ResponsePayload& p,
                             std::uint8_t out[kResponsePayloadLen]) noexcept {
  store_le32(out, p.sender_index);
  std::memcpy(out + 4, &p.server_ipv4_be, 4);
  out[8] = p.prefix_len;
  out[9] = static_cast<std::uint8_t>(p.cipher | (p.benchmark ? kResponseBenchmark : 0) |
                                     (p.checksum_partial ? kResponseChecksumPartial : 0) |
                                     (p.striped ? kResponseStriped : 0) | (p.fragments ? kResponseFragments : 0) |
                                     (p.repair ? kResponseRepair : 0));
  out[10] = static_cast<std::uint8_t>(p.mtu);
  out[11] = static_cast<std::uint8_t>(p.mtu >> 8);
  out[12] = static_cast<std::uint8_t>(p.observed_port);
  out[13] = static_cast<std::uint8_t>(p.observed_port >> 8);
  std::memcpy(out + 14, p.observed_digest.data(), kAddressDigestLen);
  std::memcpy(out + 22, &p.client_ipv4_be, 4);
  store_le64(out + 26, p.group_epoch);
  std::memcpy(out + 34, p.ipv6_prefix.data(), 8);
}

bool decode_response_payload(std::span<const std::uint8_t> in, ResponsePayload& out) noexcept {
  if (in.size() != kResponsePayloadLen) return false;
  out.sender_index = load_le32(in.data());
  std::memcpy(&out.server_ipv4_be, in.data() + 4, 4);
  out.prefix_len = in[8];
  out.cipher = in[9] & static_cast<std::uint8_t>(
                           ~(kResponseBenchmark | kResponseChecksumPartial | kResponseStriped | kResponseFragments |
                             kResponseRepair));
  out.benchmark = (in[9] & kResponseBenchmark) != 0;
  out.checksum_partial = (in[9] & kResponseChecksumPartial) != 0;
  out.striped = (in[9] & kResponseStriped) != 0;
  out.fragments = (in[9] & kResponseFragments) != 0;
  out.repair = (in[9] & kResponseRepair) != 0;
  out.mtu = static_cast<std::uint16_t>(in[10] | in[11] << 8);
  out.observed_port = static_cast<std::uint16_t>(in[12] | in[13] << 8);
  std::memcpy(out.observed_digest.data(), in.data() + 14, kAddressDigestLen);
  std::memcpy(&out.client_ipv4_be, in.data() + 22, 4);
  out.group_epoch = load_le64(in.data() + 26);
  std::memcpy(out.ipv6_prefix.data(), in.data() + 34, 8);
  return out.prefix_len <= 32 && out.cipher <= 1;
}

void encode_nack(const Nack& n, std::uint8_t out[kNackLen]) noexcept {
  out[0] = n.origin;
  store_le32(out + 1, n.base);
  store_le64(out + 5, n.bits);
}

bool decode_nack(const std::uint8_t* body, std::size_t len, Nack& out) noexcept {
  if (len < kNackLen) return false;
  out.origin = body[0];
  out.base = load_le32(body + 1);
  out.bits = load_le64(body + 5);
  return true;
}

std::size_t inner_packet_length(const std::uint8_t* p, std::size_t len) noexcept {
  if (len < 1) return 0;
  const unsigned version = p[0] >> 4;
  if (version == 4) {
    if (len < 20) return 0;
    const std::size_t ihl = std::size_t{p[0] & 0x0fu} * 4;
    const std::size_t total = std::size_t{p[2]} << 8 | p[3];
    if (ihl < 20 || total < ihl || total > len) return 0;
    return total;
  }
  if (version == 6) {
    if (len < 40) return 0;
    const std::size_t total = 40 + (std::size_t{p[4]} << 8 | p[5]);
    if (total > len) return 0;
    return total;
  }
  return 0;
}

}  // namespace triglav::dp
