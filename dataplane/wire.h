// The wire format (docs/PROTOCOL.md is the authority): one 16-byte outer header for
// every packet type, little-endian fields.
//
//   0      version (high nibble, 1) | type (low nibble)
//   1      flags
//   2      uplink id of the sender's path
//   3      aux: handshake message number, error code; Data: kDataChecksumPartial or 0;
//          0 for other transport packets
//   4..7   receiver index (chosen by the receiver during the handshake)
//   8..15  transport packets: 64-bit counter (AEAD nonce; top 8 bits = sender id)
//          handshake packets: sender index (4 bytes) + 4 reserved zero bytes
//
// Transport packets authenticate the header as AEAD associated data; their plaintext
// is a type-specific body (Data: 4-byte session sequence + inner IP packet), followed
// by the 16-byte tag. Pure functions; any thread.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace triglav::dp {

inline constexpr std::uint8_t kProtocolVersion = 1;
inline constexpr std::size_t kHeaderLen = 16;
inline constexpr std::size_t kTagLen = 16;
inline constexpr std::size_t kSeqLen = 4;
// Bytes a Data packet adds to the inner packet (before UDP and IP).
inline constexpr std::size_t kDataOverhead = kHeaderLen + kSeqLen + kTagLen;
inline constexpr std::uint16_t kDefaultPort = 7443;
inline constexpr int kDefaultMtu = 1420;
// The TUN MTU's range: IPv4's minimum, and jumbo frames (links of 9000 bytes carry an
// inner MTU of about 8920).
inline constexpr int kMinMtu = 576;
inline constexpr int kMaxMtu = 9000;

enum class PacketType : std::uint8_t {
  Data = 1,
  Control = 2,
  Ack = 3,
  Nack = 4,
  Ping = 5,
  Pong = 6,
  Handshake = 7,
  Close = 8,
  Error = 9,
};

namespace flag {
inline constexpr std::uint8_t kNeedAck = 0x01;
inline constexpr std::uint8_t kRetransmit = 0x02;
inline constexpr std::uint8_t kFragment = 0x04;
inline constexpr std::uint8_t kLastFragment = 0x08;
inline constexpr std::uint8_t kEncrypted = 0x10;
inline constexpr std::uint8_t kCompressed = 0x20;
inline constexpr std::uint8_t kPriority = 0x40;
inline constexpr std::uint8_t kProbe = 0x80;
}  // namespace flag

// Counter layout: the top 8 bits name the sender (a worker, or the control thread), so
// senders never share a nonce and each has its own replay window at the receiver.
inline constexpr int kSenderShift = 56;
inline constexpr std::uint64_t kCounterMask = (std::uint64_t{1} << kSenderShift) - 1;
inline constexpr unsigned kMaxSenders = 16;
inline constexpr unsigned kControlSender = kMaxSenders - 1;
inline constexpr unsigned kMaxWorkers = kMaxSenders - 1;

struct Header {
  PacketType type = PacketType::Data;
  std::uint8_t flags = 0;
  std::uint8_t uplink = 0;
  std::uint8_t aux = 0;
  std::uint32_t receiver = 0;
  std::uint64_t counter = 0;  // handshake: low 32 bits = sender index

  bool operator==(const Header&) const = default;
};

enum class HeaderError : std::uint8_t { Ok, TooShort, BadVersion, BadType };

void encode_header(const Header& h, std::uint8_t out[kHeaderLen]) noexcept;
[[nodiscard]] HeaderError decode_header(std::span<const std::uint8_t> pkt, Header& out) noexcept;

// Whether a type travels under the transport AEAD (all but Handshake and Error).
constexpr bool is_transport(PacketType t) noexcept {
  return t != PacketType::Handshake && t != PacketType::Error;
}

// Data aux bit: the inner TCP or UDP packet's checksum field holds only its pseudo
// header's sum (the sender cut it from a TUN super-packet and left the rest to the
// receiving kernel, which completes it or, for local delivery, has no need to: the
// AEAD already vouches for every byte).
inline constexpr std::uint8_t kDataChecksumPartial = 0x01;
// Data aux bit: a striped packet (strategy aggregate): the body ends with the packet's
// 4-byte sequence number in its inner flow, after the inner packet, so that the receiver
// puts the flow back in order (dataplane/reorder.h). Sent only to a peer that agreed in
// the handshake (kOfferStriped).
inline constexpr std::uint8_t kDataStriped = 0x02;
inline constexpr std::size_t kFlowSeqLen = 4;
// Data aux bit, with kDataStriped: a striped packet sent again because the receiver asked
// (a Nack below). Its body is the original's (its sequence number, the inner packet,
// its flow sequence number); the top four bits of aux name the sender that first sent
// it (kDataOriginShift), whose numbers these are, since the worker that sends it again
// may be another one. The receiver neither counts it as its uplink's progress nor
// learns waits from it. Only to a peer that agreed in the handshake (kOfferRepair).
inline constexpr std::uint8_t kDataResent = 0x04;
inline constexpr unsigned kDataOriginShift = 4;
static_assert(kMaxSenders <= 16, "a packet sent again names its first sender in four bits");
// Whether a Data packet is one sent again, on a session that agreed to repair (from any
// other peer the bit means nothing).
constexpr bool is_resent(const Header& h, bool repair) noexcept {
  return repair && (h.aux & (kDataStriped | kDataResent)) == (kDataStriped | kDataResent);
}
// The sender whose numbers a Data packet carries: its counter's, or for a packet sent
// again the one that first sent it.
constexpr unsigned data_sender(const Header& h, bool repair) noexcept {
  return is_resent(h, repair)
             ? static_cast<unsigned>(h.aux >> kDataOriginShift)
             : static_cast<unsigned>(h.counter >> kSenderShift);
}
// The most a Data packet adds to its inner packet: a striped one's (the path must carry
// this much more than the tunnel MTU).
inline constexpr std::size_t kMaxDataOverhead = kDataOverhead + kFlowSeqLen;
// Tunnel fragments (flag::kFragment on every piece, flag::kLastFragment on the last too):
// an inner packet larger than its uplink's path carries goes as pieces on one session,
// each body the packet's sequence number, the piece's byte offset in the inner packet
// (2 bytes, little-endian, a multiple of kFragmentGrain) and the piece. Only to a peer
// that agreed in the handshake (kOfferFragments). dataplane/reassembly.h puts them back.
inline constexpr std::size_t kFragmentOffsetLen = 2;
static_assert(kMaxMtu < 65536, "a fragment's offset has 16 bits");
inline constexpr std::size_t kFragmentGrain = 8;
// A fragment's bytes beyond its piece: header, sequence number, offset and tag.
inline constexpr std::size_t kFragmentOverhead = kDataOverhead + kFragmentOffsetLen;
// The piece of an inner packet each fragment carries on a path that carries datagrams
// of at most `max_datagram` bytes (a multiple of the grain; 0 if none fits).
constexpr std::size_t fragment_piece(std::size_t max_datagram) noexcept {
  return max_datagram > kFragmentOverhead ? (max_datagram - kFragmentOverhead) / kFragmentGrain * kFragmentGrain : 0;
}

// Handshake messages (aux = message number) and their Noise payloads.
inline constexpr std::uint8_t kHandshakeInit = 1;
inline constexpr std::uint8_t kHandshakeResponse = 2;
// Handshake header flag: the initiation is NKpsk2 under a client key (its payload names
// the key); without it, NK.
inline constexpr std::uint8_t kHandshakeClientKey = 0x01;
inline constexpr std::size_t kClientKeyIdLen = 16;
inline constexpr std::size_t kInitPayloadLen = 44;
inline constexpr std::size_t kResponsePayloadLen = 42;
inline constexpr std::size_t kNoiseOverhead = 32 + 16;  // e.pub + tag
// An initiation ends with mac1 and mac2 (16 bytes each) after its Noise message.
inline constexpr std::size_t kInitMacsLen = 32;
inline constexpr std::size_t kInitNoiseLen = kNoiseOverhead + kInitPayloadLen;
inline constexpr std::size_t kInitLen = kHeaderLen + kInitNoiseLen + kInitMacsLen;
// A cookie reply (aux 3): header, 24-byte nonce, the sealed 16-byte cookie and its tag.
inline constexpr std::uint8_t kHandshakeCookie = 3;
inline constexpr std::size_t kCookieReplyLen = kHeaderLen + 24 + 16 + 16;
inline constexpr std::size_t kResponseLen = kHeaderLen + kNoiseOverhead + kResponsePayloadLen;
inline constexpr std::size_t kErrorLen = kHeaderLen;
// Path-MTU probes (`triglav diagnose`): a probe (aux 4) is padded to the size being
// tried (kProbeMinLen to kProbeMaxLen) and ends with a MAC under the mac1 key over all
// before it; the server answers a valid one with an echo (aux 5) naming the length that
// arrived, MACed the same way and always smaller than the probe.
inline constexpr std::uint8_t kHandshakeProbe = 4;
inline constexpr std::uint8_t kHandshakeProbeEcho = 5;
inline constexpr std::size_t kProbeMinLen = kHeaderLen + 32;
inline constexpr std::size_t kProbeMaxLen = 9216;  // jumbo frames; beyond that no path matters
inline constexpr std::size_t kProbeEchoLen = kHeaderLen + 16;

struct InitPayload {
  std::uint8_t version = kProtocolVersion;
  std::uint8_t uplink = 0;
  std::uint8_t ciphers = 0;  // offers: kOfferAes256Gcm (a transport cipher), kOfferChecksumPartial
  std::uint8_t mode = 0;     // 0: a tunnel; else a benchmark session (kModeBenchmark...)
  std::uint32_t sender_index = 0;
  std::uint32_t inner_ipv4_be = 0;  // the tunnel address the client uses (0: assign me one)
  std::uint64_t timestamp_ns = 0;   // strictly increasing per client (replayed inits lose)
  std::uint64_t client_id = 0;      // random per client run; the same on all its uplinks
  std::array<std::uint8_t, kClientKeyIdLen> key_id{};  // the client key's id; zero in NK
};

inline constexpr std::size_t kAddressDigestLen = 8;

inline constexpr std::uint8_t kOfferAes256Gcm = 0x01;
// The client takes Data with kDataChecksumPartial (and the server, answering with
// ResponsePayload::checksum_partial, says it does too). Without it both ends send whole
// checksums, as peers from before the bit expect.
inline constexpr std::uint8_t kOfferChecksumPartial = 0x02;
// The client takes striped Data (kDataStriped) and reorders it; the server's answer
// (ResponsePayload::striped) says it does too. Either end stripes only when both do.
inline constexpr std::uint8_t kOfferStriped = 0x04;
// The client takes tunnel fragments (flag::kFragment) and puts them back together; the
// server's answer (ResponsePayload::fragments) says it does too. Either end fragments
// only towards a peer that does.
inline constexpr std::uint8_t kOfferFragments = 0x08;
// The client asks for striped packets its reorder buffer declared lost (Nack) and sends
// them again when asked (kDataResent); the server's answer (ResponsePayload::repair)
// says it does too. Either end asks only a peer that agreed.
inline constexpr std::uint8_t kOfferRepair = 0x10;
// InitPayload::mode: a benchmark session (`triglav benchmark`): no TUN on either side,
// synthetic traffic counted and dropped by the receiver. kModeDownload: the server sends
// too, on the number of streams in the top six bits (streams - 1).
inline constexpr std::uint8_t kModeBenchmark = 0x01;
inline constexpr std::uint8_t kModeDownload = 0x02;
inline constexpr unsigned kModeStreamsShift = 2;
inline constexpr unsigned kMaxBenchStreams = 64;
// In the response's cipher byte: the server took the initiation as a benchmark session.
// (A server that knew no benchmarks would have made it a tunnel: the client gives up.)
inline constexpr std::uint8_t kResponseBenchmark = 0x80;
// In the same byte: the server takes kDataChecksumPartial (only when it was offered).
inline constexpr std::uint8_t kResponseChecksumPartial = 0x40;
// And: the server takes and sends striped Data (only when it was offered).
inline constexpr std::uint8_t kResponseStriped = 0x20;
// And: the server takes and sends tunnel fragments (only when they were offered).
inline constexpr std::uint8_t kResponseFragments = 0x10;
// And: the server asks for and sends repairs (only when they were offered).
inline constexpr std::uint8_t kResponseRepair = 0x08;

struct ResponsePayload {
  std::uint32_t sender_index = 0;
  std::uint8_t cipher = 0;  // the transport cipher chosen: 0 ChaCha20-Poly1305, 1 AES-256-GCM
  bool benchmark = false;   // the session is a benchmark session, as the initiation asked
  bool checksum_partial = false;  // the server takes kDataChecksumPartial, as the client offered
  bool striped = false;           // the server takes kDataStriped, as the client offered
  bool fragments = false;         // the server takes tunnel fragments, as the client offered
  bool repair = false;            // the server asks for and sends repairs, as the client offered
  std::uint32_t server_ipv4_be = 0;  // the server's tunnel address
  std::uint8_t prefix_len = 0;
  std::uint16_t mtu = 0;
  // Where the initiation came from, as the server saw it: the source port and a digest
  // of the source address (the client compares them with its own to detect NAT; a
  // digest keeps the response no larger than the initiation).
  std::uint16_t observed_port = 0;
  std::array<std::uint8_t, kAddressDigestLen> observed_digest{};
  std::uint32_t client_ipv4_be = 0;  // the client's tunnel address (assigned, or as asked)
  // Names the server's state for this client (random when the server creates it): a
  // new value means the server started afresh (restart, or the client was dropped), so
  // the client's other sessions are gone and the sequence numbers restart.
  std::uint64_t group_epoch = 0;
  // The tunnel's IPv6 /64 (a ULA), whose address prefix::A.B.C.D belongs to the client
  // with tunnel IPv4 address A.B.C.D and prefix::1 to the server; all zero: no IPv6.
  std::array<std::uint8_t, 8> ipv6_prefix{};
};

// mac1 (keyed by the key derived from the server's public key, control/cookie.h) over
// an initiation's first kInitLen - 32 bytes, and mac2 (keyed by a cookie; zeros without
// one) over the first kInitLen - 16.
void stamp_initiation(std::span<std::uint8_t, kInitLen> init, const std::array<std::uint8_t, 32>& mac1_key,
                      const std::array<std::uint8_t, 16>* cookie) noexcept;
// The length and mac1 of an initiation are right: a server's workers check this before
// anything else, so initiations from whoever lacks the AuthKey cost no DH.
[[nodiscard]] bool initiation_mac1_ok(std::span<const std::uint8_t> pkt,
                                      const std::array<std::uint8_t, 32>& mac1_key) noexcept;

// Path-MTU probes: `out` (kProbeMinLen to kProbeMaxLen bytes) becomes probe `id`.
void make_probe(std::span<std::uint8_t> out, std::uint32_t id, const std::array<std::uint8_t, 32>& mac1_key) noexcept;
[[nodiscard]] bool probe_ok(std::span<const std::uint8_t> pkt, const std::array<std::uint8_t, 32>& mac1_key) noexcept;
std::array<std::uint8_t, kProbeEchoLen> probe_echo(std::uint32_t id, std::uint32_t len,
                                                   const std::array<std::uint8_t, 32>& mac1_key) noexcept;
// The length an echo of probe `id` reports; nullopt if it is not one.
std::optional<std::uint32_t> open_probe_echo(std::span<const std::uint8_t> pkt, std::uint32_t id,
                                             const std::array<std::uint8_t, 32>& mac1_key) noexcept;

void encode_init_payload(const InitPayload& p, std::uint8_t out[kInitPayloadLen]) noexcept;
[[nodiscard]] bool decode_init_payload(std::span<const std::uint8_t> in, InitPayload& out) noexcept;
void encode_response_payload(const ResponsePayload& p,
                             std::uint8_t out[kResponsePayloadLen]) noexcept;
[[nodiscard]] bool decode_response_payload(std::span<const std::uint8_t> in,
                                           ResponsePayload& out) noexcept;

// Error codes (aux of an Error packet). Errors are unauthenticated hints.
enum class ErrorCode : std::uint8_t {
  HandshakeFailed = 1,  // the initiation did not decrypt: the client holds another key
  ServerFull = 2,
  AddressRejected = 3,  // the requested tunnel address is taken or outside the pool
  BadVersion = 4,
  ClientKeyRequired = 5,  // the server authorises clients: this one came without a key
  ClientKeyRejected = 6,  // the server does not know (or no longer accepts) this client key
  BenchmarkRefused = 7,   // a benchmark session, and the server does not accept them
  StaleTimestamp = 8,     // not newer than one seen from this key, or beyond max_clock_skew
  AddressIsServers = 9,   // the requested tunnel address is the server's own
};

// The datagrams of a receive buffer of `total` bytes that the kernel coalesced (UDP GRO)
// into `seg`-byte segments, the last possibly shorter; seg 0 or >= total means one
// datagram. Calls fn(offset, length) for each, at least once (an empty datagram too).
template <typename F>
void for_each_segment(std::size_t total, std::size_t seg, F&& fn) {
  if (seg == 0 || seg > total) seg = total;
  std::size_t off = 0;
  do {
    fn(off, seg == 0 ? 0 : std::min(seg, total - off));
    off += seg;
  } while (seg != 0 && off < total);
}

// Control packets (type 2) carry one message: a kind byte, then its fields.
enum class ControlKind : std::uint8_t {
  UplinkDown = 1,  // [uplink id]: the sender's uplink is down; stop sending on its session
  // [mask, 2 bytes little-endian, bit i = uplink id i]: the uplinks the sender stripes
  // over now (strategy aggregate); the receiver's reorder buffer waits for no other.
  StripeUplinks = 2,
  // [uplink id, size (2 bytes little-endian)]: the client's uplink carries datagrams of
  // at most this size both ways (its path-MTU search), less than full tunnel packets
  // need; 0: it carries them. The server fragments what it sends on it to fit.
  PathMtu = 3,
};
inline constexpr std::size_t kControlBodyMax = 32;
inline constexpr std::size_t kStripeUplinksLen = 3;  // kind, mask (2 bytes, little-endian)
inline constexpr std::size_t kPathMtuLen = 4;        // kind, uplink id, size (2 bytes, little-endian)

// A StripeUplinks message's body, and its mask read back (false: not one, or too short).
inline void encode_stripe_uplinks(std::uint16_t mask, std::uint8_t* out) noexcept {
  out[0] = static_cast<std::uint8_t>(ControlKind::StripeUplinks);
  out[1] = static_cast<std::uint8_t>(mask);
  out[2] = static_cast<std::uint8_t>(mask >> 8);
}
inline bool decode_stripe_uplinks(const std::uint8_t* body, std::size_t len, std::uint16_t& mask) noexcept {
  if (len < kStripeUplinksLen || body[0] != static_cast<std::uint8_t>(ControlKind::StripeUplinks)) return false;
  mask = static_cast<std::uint16_t>(body[1] | body[2] << 8);
  return true;
}

// A PathMtu message's body, and its fields read back (false: not one, or too short).
inline void encode_path_mtu(std::uint8_t uplink, std::uint16_t size, std::uint8_t* out) noexcept {
  out[0] = static_cast<std::uint8_t>(ControlKind::PathMtu);
  out[1] = uplink;
  out[2] = static_cast<std::uint8_t>(size);
  out[3] = static_cast<std::uint8_t>(size >> 8);
}
inline bool decode_path_mtu(const std::uint8_t* body, std::size_t len, std::uint8_t& uplink,
                            std::uint16_t& size) noexcept {
  if (len < kPathMtuLen || body[0] != static_cast<std::uint8_t>(ControlKind::PathMtu)) return false;
  uplink = body[1];
  size = static_cast<std::uint16_t>(body[2] | body[3] << 8);
  return true;
}

// A Nack (type 4, transport) asks the peer to send striped packets again: the sender
// whose numbers they are (1 byte), a base sequence number (4 bytes, little-endian) and a
// bitmap (8 bytes, little-endian): bit i asks for base + i. The receiver sends one when
// its reorder buffer declares a gap lost (every uplink delivered something sent after it).
inline constexpr std::size_t kNackLen = 13;
struct Nack {
  std::uint8_t origin = 0;
  std::uint32_t base = 0;
  std::uint64_t bits = 0;
};
void encode_nack(const Nack& n, std::uint8_t out[kNackLen]) noexcept;
[[nodiscard]] bool decode_nack(const std::uint8_t* body, std::size_t len, Nack& out) noexcept;

// Minimal checks of an inner IP packet: version, header length, total length within
// len. Returns the packet's own length (trailing bytes beyond it are ignored) or 0.
[[nodiscard]] std::size_t inner_packet_length(const std::uint8_t* p, std::size_t len) noexcept;

inline std::uint32_t load_le32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}
inline void store_le32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint64_t load_le64(const std::uint8_t* p) noexcept {
  return std::uint64_t{load_le32(p)} | std::uint64_t{load_le32(p + 4)} << 32;
}
inline void store_le64(std::uint8_t* p, std::uint64_t v) noexcept {
  store_le32(p, static_cast<std::uint32_t>(v));
  store_le32(p + 4, static_cast<std::uint32_t>(v >> 32));
}

}  // namespace triglav::dp
