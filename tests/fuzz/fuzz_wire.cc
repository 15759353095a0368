// Header and payload parsing, and the pure checks on unencrypted packets: whatever the
// bytes, these return, never read outside the input, and agree with each other.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "crypto/aead.h"
#include "dataplane/handshake_guard.h"
#include "dataplane/offload.h"
#include "dataplane/wire.h"

using namespace triglav;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool ok = crypto::init();
  if (!ok) return 0;
  static const dp::HandshakeMacKeys keys = dp::HandshakeMacKeys::for_server(crypto::PublicKey{9});
  const std::span<const std::uint8_t> in(data, size);
  dp::Header h;
  if (dp::decode_header(in, h) == dp::HeaderError::Ok) {
    std::uint8_t again[dp::kHeaderLen];
    dp::encode_header(h, again);
    dp::Header h2;
    if (dp::decode_header({again, dp::kHeaderLen}, h2) != dp::HeaderError::Ok || !(h2 == h)) __builtin_trap();
  }
  dp::InitPayload ip;
  if (dp::decode_init_payload(in, ip)) {
    std::uint8_t b[dp::kInitPayloadLen];
    dp::encode_init_payload(ip, b);
  }
  dp::ResponsePayload rp;
  (void)dp::decode_response_payload(in, rp);
  (void)dp::initiation_mac1_ok(in, keys.mac1);
  const std::array<std::uint8_t, crypto::kMacLen> mac1{};
  (void)dp::open_cookie_reply(in, 1, mac1, keys.cookie);
  const std::size_t n = dp::inner_packet_length(data, size);
  if (n > size) __builtin_trap();
  // The MSS clamp on an inner packet: stays within it, and a clamped SYN is left as it
  // is by a second pass.
  std::vector<std::uint8_t> pkt(data, data + size);
  const std::size_t fit = size > 0 ? 500 + std::size_t{data[0]} * 4 : 1240;
  if (dp::clamp_tcp_mss(pkt.data(), pkt.size(), fit, false) && dp::clamp_tcp_mss(pkt.data(), pkt.size(), fit, false))
    __builtin_trap();
  return 0;
}
