// The packet paths of a worker that run before, or without, any session state.
//  1. A receive buffer as the workers see it with UDP GRO: bytes 0-1 are the segment
//     size the kernel reported, the rest the coalesced datagrams. Each segment goes
//     through the worker's classification: unencrypted ones through the server's
//     HandshakeGate (mac1, probes, cookies, rate limits, on a clock that moves 7 ms a
//     datagram), the others' bodies as decrypted Data (inner IP length, 5-tuple hash of
//     the inner packet), and the inner packets through userspace GRO.
//  2. The same bytes as a TUN read with offloads: a virtio_net_hdr, then a packet or a
//     super-packet, cut into segments (userspace GSO) which are joined again.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "crypto/aead.h"
#include "dataplane/flow.h"
#include "dataplane/handshake_guard.h"
#include "dataplane/offload.h"
#include "dataplane/wire.h"

using namespace triglav;

namespace {

// Feeds packets to userspace GRO as the worker does: join while they continue the run.
struct Joiner {
  dp::GroRun run;
  void add(std::uint8_t* p, std::size_t len) {
    if (run.n > 0 && dp::gro_append(run, p, len)) {
      if (run.n > dp::kMaxGroSegments || run.hdr_len + run.payload > 65535) __builtin_trap();
      return;
    }
    finish();
    (void)dp::gro_start(run, p, len);
  }
  void finish() {
    if (run.n >= 2) {
      const dp::VnetHdr h = dp::gro_finish(run);
      if (h.hdr_len != run.hdr_len || h.gso_size != run.mss) __builtin_trap();
    }
    run = dp::GroRun{};
  }
};

void tun_read(const std::uint8_t* data, std::size_t size) {
  if (size < dp::kVnetHdrLen) return;
  std::vector<std::uint8_t> pkt(data + dp::kVnetHdrLen, data + size);
  dp::GsoPlan plan;
  const dp::TunPacket kind = dp::classify_tun_packet(dp::load_vnet_hdr(data), pkt.data(), pkt.size(), plan);
  if (kind != dp::TunPacket::Split) return;
  if (plan.segments == 0 || plan.segments > dp::kMaxGsoSegmentsIn || plan.hdr_len + plan.payload != pkt.size())
    __builtin_trap();
  std::vector<std::vector<std::uint8_t>> segs(plan.segments);
  std::size_t payload = 0;
  Joiner j;
  for (unsigned i = 0; i < plan.segments; ++i) {
    segs[i].resize(plan.hdr_len + plan.mss);
    const std::size_t n = dp::write_segment(plan, pkt.data(), i, segs[i].data());
    if (n <= plan.hdr_len || n > plan.hdr_len + plan.mss) __builtin_trap();
    payload += n - plan.hdr_len;
    j.add(segs[i].data(), n);
  }
  j.finish();
  if (payload != plan.payload) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool ok = crypto::init();
  if (!ok || size < 2) return 0;
  static const dp::HandshakeMacKeys keys = dp::HandshakeMacKeys::for_server(crypto::PublicKey{7});
  static dp::HandshakeGate gate(keys, [] {
    dp::GuardConfig g;
    g.load_per_second = 4;  // under load soon: cookies and rate limits are reached too
    g.max_sources = 64;
    return g;
  }());
  static std::int64_t now_ns = 1'000'000'000;
  const std::size_t seg = data[0] | std::size_t{data[1]} << 8;
  const std::uint8_t* buf = data + 2;
  const std::size_t total = size - 2;
  std::size_t covered = 0;
  std::vector<std::uint8_t> copy(buf, buf + total);  // GRO rewrites the headers it joins
  Joiner joiner;
  dp::for_each_segment(total, seg, [&](std::size_t off, std::size_t len) {
    if (off + len > total) __builtin_trap();
    covered += len;
    const std::uint8_t* p = buf + off;
    dp::Header h;
    if (dp::decode_header({p, len}, h) != dp::HeaderError::Ok) return;
    if (!dp::is_transport(h.type)) {
      // The server's screen: only initiations go on, and no answer outgrows its datagram.
      now_ns += 7'000'000;
      const io::Endpoint from = io::Endpoint::from_ipv4(0x0100000au + (std::uint32_t{p[len - 1]} << 24), 40000);
      const auto o = gate.screen(h, {p, len}, from, now_ns);
      using Action = dp::HandshakeGate::Outcome::Action;
      if (o.action == Action::ToControl && (h.type != dp::PacketType::Handshake || h.aux != dp::kHandshakeInit))
        __builtin_trap();
      if (o.action == Action::Reply && (o.len == 0 || o.len >= len)) __builtin_trap();
      if (o.action == Action::Drop && dp::counter_info(o.count).kind != dp::CounterKind::Drop) __builtin_trap();
      return;
    }
    if (len < dp::kHeaderLen + dp::kSeqLen) return;
    // What a Data body holds after decryption: the sequence number, then an IP packet.
    const std::uint8_t* inner = p + dp::kHeaderLen + dp::kSeqLen;
    const std::size_t inner_len = dp::inner_packet_length(inner, len - dp::kHeaderLen - dp::kSeqLen);
    if (inner_len > len) __builtin_trap();
    if (dp::flow_hash(inner, len - dp::kHeaderLen - dp::kSeqLen) == 0) __builtin_trap();  // never 0
    if (inner_len > 0) joiner.add(copy.data() + off + dp::kHeaderLen + dp::kSeqLen, inner_len);
  });
  joiner.finish();
  if (covered != total) __builtin_trap();
  tun_read(data, size);
  return 0;
}
