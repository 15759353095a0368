// A receive buffer as the workers see it with UDP GRO: bytes 0-1 are the segment size
// the kernel reported, the rest the coalesced datagrams. Each segment goes through the
// classification a worker applies before any session state (header, initiation mac1,
// inner IP length, 5-tuple hash of the inner packet).
#include <cstddef>
#include <cstdint>

#include "crypto/aead.h"
#include "dataplane/flow.h"
#include "dataplane/handshake_guard.h"
#include "dataplane/wire.h"

using namespace triglav;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool ok = crypto::init();
  if (!ok || size < 2) return 0;
  static const dp::HandshakeMacKeys keys = dp::HandshakeMacKeys::for_server(crypto::PublicKey{7});
  const std::size_t seg = data[0] | std::size_t{data[1]} << 8;
  const std::uint8_t* buf = data + 2;
  const std::size_t total = size - 2;
  std::size_t covered = 0;
  dp::for_each_segment(total, seg, [&](std::size_t off, std::size_t len) {
    if (off + len > total) __builtin_trap();
    covered += len;
    const std::uint8_t* p = buf + off;
    dp::Header h;
    if (dp::decode_header({p, len}, h) != dp::HeaderError::Ok) return;
    if (h.type == dp::PacketType::Handshake) {
      (void)dp::initiation_mac1_ok({p, len}, keys.mac1);
      return;
    }
    if (len < dp::kHeaderLen + dp::kSeqLen) return;
    // What a Data body holds after decryption: the sequence number, then an IP packet.
    const std::uint8_t* inner = p + dp::kHeaderLen + dp::kSeqLen;
    const std::size_t inner_len = dp::inner_packet_length(inner, len - dp::kHeaderLen - dp::kSeqLen);
    if (inner_len > len) __builtin_trap();
    if (dp::flow_hash(inner, len - dp::kHeaderLen - dp::kSeqLen) == 0) __builtin_trap();  // never 0
  });
  if (covered != total) __builtin_trap();
  return 0;
}
