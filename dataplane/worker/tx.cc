// Transmit (TUN -> uplinks), when the TUN queue is readable and slots are free:
//   1. read: inner packets (non-blocking, up to kBatch per turn) straight into a free
//      transmit slot at the payload offset, leaving headroom for the header and sequence
//      number and tailroom for the tag. With TUN offloads a read may be a TCP or UDP
//      super-packet, cut here into segments, each into its own slot.
//   2. route: the client sends everything to its session; the server picks the client by
//      inner destination address (route_for).
//   3. schedule (send_data): the client's flow keeps its uplink while usable (the
//      scheduler, dataplane/scheduler.h); the redundant strategy sends a copy on each.
//      Every copy carries the same sequence number. Strategy aggregate (send_striped)
//      sends each packet on the uplink where it arrives first, with its flow's sequence
//      number after it.
//   4. seal in place under each uplink's session keys with this worker's counter (sender
//      id in the top bits) (emit).
//   5. send (udp_send.h): consecutive datagrams of one size to one peer on one socket
//      leave as one sendmsg with UDP GSO, submitted at the end of the loop turn; the
//      slots are free again on its completion.
// The benchmark generator (triglav benchmark) enters at step 3 with synthetic packets,
// and Pongs (answers to the peer's Pings, rx.cc) at step 4.
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "dataplane/worker/loop.h"
#include "io/clock.h"

namespace triglav::dp {
namespace {

// IPv6 to a multicast or link-local address: the kernel's own chatter on the TUN
// (multicast listener reports and the like), which no tunnel carries.
bool link_local(const std::uint8_t* inner) noexcept {
  const std::uint8_t* dst = inner + 24;
  return dst[0] == 0xff || (dst[0] == 0xfe && (dst[1] & 0xc0) == 0x80);
}

// A Data packet of n inner bytes sent on a session, for the control thread's per-uplink
// figures. Only this worker writes its SenderState: a plain add, no atomic read-modify-write.
void count_sent(SenderState& t, std::size_t n, bool copy) noexcept {
  t.bytes.store(t.bytes.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  t.packets.store(t.packets.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (copy) t.copies.store(t.copies.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace

std::size_t max_packet_for(int mtu) noexcept {
  const std::size_t need = static_cast<std::size_t>(std::max(mtu, 0)) + kPayloadOffset + kFlowSeqLen + kTagLen;
  return std::max<std::size_t>(2048, (need + 63) / 64 * 64);
}

// Whether the transmit side can go on: a TUN read (or a pending one) has the slots for a
// packet and its copies or fragments.
bool Worker::Loop::tx_room() const noexcept { return tx_.free.size() >= kMaxUplinks; }

bool Worker::Loop::tx_work() const noexcept {
  return (tx_.tun_ready || tx_.pending.active || tx_.generating) && tx_room();
}

// --- 1. read -----------------------------------------------------------------------

void Worker::Loop::tx_batch() noexcept {
  if (cfg_.tun_vnet_hdr) return tx_batch_offload();
  for (unsigned i = 0; i < kBatch; ++i) {
    if (tx_.free.empty()) return;  // back-pressure: wait for send completions
    const std::uint16_t slot = tx_.free.back();
    std::uint8_t* buf = slot_mem(slot);
    const ssize_t n = read(cfg_.tun_fd, buf + kPayloadOffset, slot_room());
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      tx_.tun_ready = false;  // EAGAIN (or the device went away): wait for the next poll
      return;
    }
    c_.add(Counter::TunReadPackets);
    const GroupRoute* r = route_for(buf + kPayloadOffset, static_cast<std::size_t>(n));
    if (r == nullptr) {
      no_route(buf + kPayloadOffset, static_cast<std::size_t>(n));
      continue;
    }
    tx_.free.pop_back();
    send_data(*r, slot, buf, static_cast<std::size_t>(n));
  }
}

// With TUN offloads: each read (into tun_buf, behind its virtio_net_hdr) is one packet or
// a super-packet, cut into segments, each into its own slot. When the slots run out
// mid-way (a small MSS, redundant copies on many uplinks), the rest of the read stays
// pending and goes on as send completions free slots; nothing is read meanwhile, and
// nothing is dropped.
void Worker::Loop::tx_batch_offload() noexcept {
  for (unsigned i = 0; i < kBatch; ++i) {
    if (!tx_.pending.active && !read_offload()) return;
    if (!tx_.pending.active) continue;  // that read was dropped
    if (!send_pending()) return;         // out of slots: go on after send completions
  }
}

// One read into tun_buf, made the pending read unless it is dropped. False when there is
// nothing to read.
bool Worker::Loop::read_offload() noexcept {
  if (!tx_.tun_ready) return false;
  const ssize_t n = read(cfg_.tun_fd, tx_.tun_buf.data(), tx_.tun_buf.size());
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return true;
    tx_.tun_ready = false;  // EAGAIN (or the device went away): wait for the next poll
    return false;
  }
  if (static_cast<std::size_t>(n) <= kVnetHdrLen) {
    c_.add(Counter::DropTunMalformed);
    return true;
  }
  Tx::Pending& p = tx_.pending;
  p.len = static_cast<std::size_t>(n) - kVnetHdrLen;
  p.kind = classify_tun_packet(load_vnet_hdr(tx_.tun_buf.data()), tx_.tun_buf.data() + kVnetHdrLen, p.len, p.plan);
  if (p.kind == TunPacket::Malformed || p.kind == TunPacket::Unsupported) {
    c_.add(p.kind == TunPacket::Malformed ? Counter::DropTunMalformed : Counter::DropTunUnsupported);
    return true;
  }
  if (p.kind == TunPacket::Plain ? p.len > slot_room() : p.plan.hdr_len + p.plan.mss > slot_room()) {
    c_.add(Counter::DropTunTooBig);
    return true;
  }
  p.segments = p.kind == TunPacket::Split ? p.plan.segments : 1;
  p.next = 0;
  p.active = true;
  c_.add(Counter::TunReadPackets, p.segments);
  if (p.kind == TunPacket::Split) c_.add(Counter::TunGsoReads);
  return true;
}

// Sends what is left of the pending read; false when the slots ran out first.
bool Worker::Loop::send_pending() noexcept {
  Tx::Pending& p = tx_.pending;
  const std::uint8_t* pkt = tx_.tun_buf.data() + kVnetHdrLen;
  const GroupRoute* r = route_for(pkt, p.len);  // looked up again: the snapshot may be newer
  if (r == nullptr) {
    no_route(pkt, p.len, p.segments - p.next);
    p.active = false;
    return true;
  }
  for (; p.next < p.segments; ++p.next) {
    if (tx_.free.size() < kMaxUplinks) return false;  // room for a segment and all its copies
    const std::uint16_t slot = take_slot();
    std::uint8_t* buf = slot_mem(slot);
    std::size_t seg_len = p.len;
    // Segments go with the checksum partial to peers that take it so: the receiver's
    // kernel completes it, or needs none (the AEAD covers every byte on the way).
    if (p.kind == TunPacket::Split) {
      seg_len = write_segment(p.plan, pkt, p.next, buf + kPayloadOffset, Checksum::Partial);
    } else {
      std::memcpy(buf + kPayloadOffset, pkt, p.len);
    }
    send_data(*r, slot, buf, seg_len, p.kind == TunPacket::Split);
  }
  p.active = false;
  return true;
}

// --- 2. route ----------------------------------------------------------------------

// The Group an inner packet goes to: the client's one, or the server's client that owns
// the destination address. Null: nobody.
const GroupRoute* Worker::Loop::route_for(const std::uint8_t* inner, std::size_t n) const noexcept {
  const unsigned v = inner[0] >> 4;
  if (v == 6 && n >= 40) return link_local(inner) ? nullptr : snap_->route_ipv6(inner + 24);
  if (v != 4 || n < 20) return snap_->default_route;
  std::uint32_t dst;
  std::memcpy(&dst, inner + 16, 4);
  return snap_->route_ipv4(dst);
}

// Nowhere to send an inner packet: counted as kept on the link, or as no route.
void Worker::Loop::no_route(const std::uint8_t* inner, std::size_t n, std::uint64_t count) noexcept {
  const bool local = n >= 40 && (inner[0] >> 4) == 6 && link_local(inner);
  c_.add(local ? Counter::TunLocalIgnored : Counter::DropNoRoute, count);
}

// --- benchmark traffic -------------------------------------------------------------

// Synthetic packets (triglav benchmark) for the routes the snapshot lists, in turn, while
// slots are free. Each stream is its own UDP flow (so streams spread over uplinks as real
// flows do) and belongs to one worker, s mod workers, as an iperf3 stream to one core:
// --streams says how many send at once.
unsigned Worker::Loop::owned_streams(const GroupRoute& r) const noexcept {
  const unsigned n = r.gen.streams, w = cfg_.workers, id = cfg_.id;
  return id < n ? (n - id + w - 1) / w : 0;
}

void Worker::Loop::generate() noexcept {
  const auto& routes = snap_->generate;
  for (unsigned i = 0, idle = 0; i < kBatch && idle < routes.size() && tx_.free.size() >= kMaxUplinks; ++i) {
    const GroupRoute& r = *routes[tx_.gen_next++ % routes.size()];
    const unsigned owned = owned_streams(r);
    if (owned == 0) {
      ++idle;
      continue;
    }
    idle = 0;
    const unsigned stream = cfg_.id + cfg_.workers * (tx_.gen_stream++ % owned);
    const std::uint16_t slot = take_slot();
    std::uint8_t* buf = slot_mem(slot);
    const std::size_t n = write_generated(buf + kPayloadOffset, slot_room(), r.gen, stream);
    c_.add(Counter::BenchGenerated);
    send_data(r, slot, buf, n);
  }
}

// --- 3. schedule -------------------------------------------------------------------

// One inner packet (in slot, at kPayloadOffset) onto the client's uplinks. Each copy is
// sealed under its own uplink's keys, so the plaintext is copied to the next slot before
// a copy is sealed. partial: the inner packet's checksum is partial (a segment cut here);
// completed in place before the copy for a peer that did not agree to take it so.
void Worker::Loop::send_data(const GroupRoute& r, std::uint16_t slot, std::uint8_t* buf, std::size_t n,
                             bool partial) noexcept {
  GroupWorkerState* state = worker_state(r);
  if (state == nullptr) {
    c_.add(Counter::DropNoMemory);
    tx_.free.push_back(slot);
    return;
  }
  GroupWorkerState& gw = *state;
  if (const std::uint16_t fit = r.group->mss_clamp_packet.load(std::memory_order_relaxed); fit != 0)
    (void)clamp_tcp_mss(buf + kPayloadOffset, n, fit, partial);  // a SYN from us
  if (r.sched.strategy == Strategy::Aggregate && send_striped(r, gw, slot, buf, n, partial)) return;
  UplinkMask m = tx_.flows.route(flow_hash(buf + kPayloadOffset, n), now_, gw.sched);
  std::uint16_t cur = slot;
  bool any = false;
  store_le32(buf + kHeaderLen, gw.next_seq++);
  while (m != 0) {
    const unsigned id = static_cast<unsigned>(std::countr_zero(m));
    m &= m - 1;
    Session* s = r.uplinks[id];
    // Unconfirmed (a server's new client before its first authenticated packet): its
    // address has proven nothing, so nothing goes there.
    if (s == nullptr || fds_[s->socket] < 0 || !s->confirmed.load(std::memory_order_relaxed)) continue;
    const io::Endpoint to = s->peer_copy();
    if (to.len == 0) continue;
    std::uint8_t* b = slot_mem(cur);
    const std::size_t limit = fragment_limit(r, *s);
    const bool whole = limit == 0 || kDataOverhead + n <= limit;
    if (partial && (!s->peer_takes_partial || !whole)) {  // this and any later copy: whole checksums
      complete_partial_checksum(b + kPayloadOffset, n);
      partial = false;
    }
    if (!whole) {  // pieces copied out of the slot, which stays for the next copy
      if (send_fragments(*s, to, b, n, limit)) {
        count_sent(*s->tx.find(cfg_.id), n, any);
        c_.add(Counter::TxPackets);
        c_.add(Counter::TxBytes, n);
        if (any) c_.add(Counter::TxRedundantCopies);
        any = true;
      }
      continue;
    }
    std::uint16_t next = 0;
    const bool more = m != 0 && !tx_.free.empty();
    if (more) {  // keep the plaintext for the next copy before sealing this one
      next = take_slot();
      std::memcpy(slot_mem(next) + kHeaderLen, b + kHeaderLen, kSeqLen + n);
    }
    if (!emit(s, to, PacketType::Data, cur, b, kSeqLen + n, partial ? kDataChecksumPartial : 0)) {
      if (!more) return;
      cur = next;
      continue;
    }
    count_sent(*s->tx.find(cfg_.id), n, any);
    c_.add(Counter::TxPackets);
    c_.add(Counter::TxBytes, n);
    if (any) c_.add(Counter::TxRedundantCopies);
    any = true;
    if (!more) return;
    cur = next;
  }
  if (!any) c_.add(Counter::DropNoUplink);
  tx_.free.push_back(cur);  // the one slot still held: the packet's, or an unused copy's
}

// Strategy aggregate: the packet goes to the one uplink where it is predicted to arrive
// first (Striper), its flow's sequence number after it for the receiver's reorder
// buffer. False, with nothing done, when a session of the group cannot be striped (its
// peer does not reorder): the flow is then placed as by adaptive.
bool Worker::Loop::send_striped(const GroupRoute& r, GroupWorkerState& gw, std::uint16_t slot, std::uint8_t* buf,
                                std::size_t n, bool partial) noexcept {
  UplinkMask allowed = 0;
  if (!stripe_allowed(r, gw, allowed)) return false;
  const int u = gw.stripe.pick(allowed, n + kDataOverhead + kFlowSeqLen, now_);
  Session* s = u < 0 ? nullptr : r.uplinks[static_cast<unsigned>(u)];
  const io::Endpoint to = s != nullptr ? s->peer_copy() : io::Endpoint{};
  if (to.len == 0) {
    c_.add(Counter::DropNoUplink);
    tx_.free.push_back(slot);
    return true;
  }
  const std::uint32_t seq = gw.next_seq++;
  store_le32(buf + kHeaderLen, seq);
  if (const std::size_t limit = fragment_limit(r, *s); limit != 0 && kDataOverhead + kFlowSeqLen + n > limit) {
    // Too big for its uplink's path: in fragments, outside the flow's order (the
    // receiver puts it back together and delivers it as it comes).
    if (partial) complete_partial_checksum(buf + kPayloadOffset, n);
    if (send_fragments(*s, to, buf, n, limit)) {
      count_sent(*s->tx.find(cfg_.id), n, false);
      c_.add(Counter::TxPackets);
      c_.add(Counter::TxBytes, n);
    }
    tx_.free.push_back(slot);
    return true;
  }
  const std::uint32_t flow_seq = tx_.flows.next_seq(flow_hash(buf + kPayloadOffset, n), now_);
  store_le32(buf + kPayloadOffset + n, flow_seq);
  if (partial && !s->peer_takes_partial) {
    complete_partial_checksum(buf + kPayloadOffset, n);
    partial = false;
  }
  // Kept (before sealing) in case the peer asks for it again.
  if (cfg_.repair != nullptr && s->peer_takes_repair)
    cfg_.repair->stores[cfg_.id]->put(r.group->serial, seq, flow_seq, partial, buf + kPayloadOffset, n, now_);
  if (emit_striped(s, to, slot, buf, n, partial, 0)) c_.add(Counter::TxStriped);
  return true;
}

// This worker's state for the client of route r, brought up to the route's views (made
// when it first sends to the client; null if that failed).
GroupWorkerState* Worker::Loop::worker_state(const GroupRoute& r) noexcept {
  GroupWorkerState* gw = r.group->workers.get(cfg_.id);
  if (gw != nullptr && gw->views_version != r.version) {
    gw->sched.set_config(r.sched);
    gw->sched.update({r.views.data(), r.n_views}, now_);
    gw->stripe.update({r.views.data(), r.n_views}, cfg_.repair != nullptr ? r.repair_ns : 0);
    gw->views_version = r.version;
  }
  return gw;
}

// The uplinks a striped packet may take: the scheduler's usable ones whose session is
// confirmed and has a socket. False when one of them cannot be striped (its peer does
// not reorder).
bool Worker::Loop::stripe_allowed(const GroupRoute& r, const GroupWorkerState& gw, UplinkMask& allowed) const noexcept {
  allowed = 0;
  for (UplinkMask m = gw.sched.usable_mask(); m != 0; m &= m - 1) {
    const auto id = static_cast<unsigned>(std::countr_zero(m));
    const Session* s = r.uplinks[id];
    if (s == nullptr) continue;
    if (!s->peer_takes_striped) return false;
    if (fds_[s->socket] >= 0 && s->confirmed.load(std::memory_order_relaxed)) allowed |= UplinkMask{1} << id;
  }
  return true;
}

// The route of a client's Group in the current snapshot (client: the server's; server:
// by the client's tunnel address); null when it has none.
const GroupRoute* Worker::Loop::route_of(const Group& g) const noexcept {
  const GroupRoute* r = snap_->default_route;
  if (r == nullptr) {
    auto it = snap_->by_inner_ipv4.find(g.inner_ipv4_be);
    r = it == snap_->by_inner_ipv4.end() ? nullptr : it->second;
  }
  return r != nullptr && r->group == &g ? r : nullptr;
}

// A Nack: the peer's reorder buffer declared striped packets lost. Each one asked for
// that is still kept (by whichever worker sent it: its RepairStore) goes again, once,
// on the uplink where it now arrives first, with its first sender's numbers.
Worker::Loop::Step Worker::Loop::answer_nack(Session& s, const std::uint8_t* body, std::size_t n) noexcept {
  Nack k;
  if (!decode_nack(body, n, k)) return drop(Counter::DropMalformed);
  if (cfg_.repair == nullptr || !s.peer_takes_repair || k.origin >= cfg_.repair->stores.size())
    return drop(Counter::DropUnexpected);
  c_.add(Counter::RxRepairRequests);
  const GroupRoute* r = route_of(*s.group);
  GroupWorkerState* gw = r != nullptr ? worker_state(*r) : nullptr;
  UplinkMask allowed = 0;
  if (gw == nullptr || !stripe_allowed(*r, *gw, allowed) || allowed == 0) {
    c_.add(Counter::TxRepairUnavailable, static_cast<std::uint64_t>(std::popcount(k.bits)));
    return done();
  }
  RepairStore& store = *cfg_.repair->stores[k.origin];
  for (std::uint64_t bits = k.bits; bits != 0; bits &= bits - 1) {
    if (tx_.free.empty()) {
      c_.add(Counter::DropTxNoRoom);
      break;
    }
    const std::uint32_t seq = k.base + static_cast<std::uint32_t>(std::countr_zero(bits));
    const std::uint16_t slot = take_slot();
    std::uint8_t* buf = slot_mem(slot);
    RepairStore::Found f;
    if (!store.take(s.group->serial, seq, now_, buf + kPayloadOffset, slot_room(), f)) {
      tx_.free.push_back(slot);
      c_.add(Counter::TxRepairUnavailable);
      continue;
    }
    resend(*r, *gw, allowed, slot, buf, k.origin, seq, f);
  }
  return done();
}

// A kept packet (its inner bytes in slot at kPayloadOffset) sent again, sealed anew: its
// first sender's sequence number, its flow sequence number, and that sender in aux, on
// the uplink where it arrives first.
void Worker::Loop::resend(const GroupRoute& r, GroupWorkerState& gw, UplinkMask allowed, std::uint16_t slot,
                          std::uint8_t* buf, unsigned origin, std::uint32_t seq,
                          const RepairStore::Found& f) noexcept {
  const std::size_t n = f.len;
  const int u = gw.stripe.pick(allowed, n + kDataOverhead + kFlowSeqLen, now_);
  Session* s = u < 0 ? nullptr : r.uplinks[static_cast<unsigned>(u)];
  const io::Endpoint to = s != nullptr ? s->peer_copy() : io::Endpoint{};
  const std::size_t limit = s != nullptr ? fragment_limit(r, *s) : 0;
  if (to.len == 0 || (limit != 0 && kDataOverhead + kFlowSeqLen + n > limit)) {  // not as fragments: rare, and late
    c_.add(Counter::TxRepairUnavailable);
    tx_.free.push_back(slot);
    return;
  }
  store_le32(buf + kHeaderLen, seq);
  store_le32(buf + kPayloadOffset + n, f.flow_seq);
  const auto resent = static_cast<std::uint8_t>(kDataResent | origin << kDataOriginShift);
  if (emit_striped(s, to, slot, buf, n, f.partial, resent)) c_.add(Counter::TxRepairs);
}

// A striped packet (inner bytes at kPayloadOffset, its sequence and flow sequence numbers
// in place) sealed and handed on to session s: its checksum completed first if the peer
// does not take it partial; `aux` adds to kDataStriped. False when it was not sent.
bool Worker::Loop::emit_striped(Session* s, const io::Endpoint& to, std::uint16_t slot, std::uint8_t* buf,
                                std::size_t n, bool partial, std::uint8_t aux) noexcept {
  if (partial && !s->peer_takes_partial) {
    complete_partial_checksum(buf + kPayloadOffset, n);
    partial = false;
  }
  aux |= static_cast<std::uint8_t>(kDataStriped | (partial ? kDataChecksumPartial : 0));
  if (!emit(s, to, PacketType::Data, slot, buf, kSeqLen + n + kFlowSeqLen, aux)) return false;
  count_sent(*s->tx.find(cfg_.id), n, false);
  c_.add(Counter::TxPackets);
  c_.add(Counter::TxBytes, n);
  return true;
}

// The largest datagram session s's path carries, where that is less than full tunnel
// packets need and the peer takes fragments; else 0: everything goes whole.
std::size_t Worker::Loop::fragment_limit(const GroupRoute& r, const Session& s) const noexcept {
  if (!s.peer_takes_fragments || s.uplink >= kMaxUplinks) return 0;
  return r.group->max_datagram[s.uplink].load(std::memory_order_relaxed);
}

// Inner packet buf[kPayloadOffset, + n), its sequence number in front, as tunnel
// fragments on session s, each datagram at most max_datagram bytes: pieces on the
// 8-byte grid, in order, each in a slot of its own (docs/PROTOCOL.md, "Fragments").
// False when nothing, or not all of it, was sent (counted).
bool Worker::Loop::send_fragments(Session& s, const io::Endpoint& to, const std::uint8_t* buf, std::size_t n,
                                  std::size_t max_datagram) noexcept {
  const std::size_t piece = fragment_piece(max_datagram);
  if (piece == 0 || tx_.free.size() < (n + piece - 1) / piece) {
    c_.add(Counter::DropTxNoRoom);
    return false;
  }
  for (std::size_t off = 0; off < n; off += piece) {
    const std::size_t len = std::min(piece, n - off);
    const std::uint16_t slot = take_slot();
    std::uint8_t* f = slot_mem(slot);
    std::memcpy(f + kHeaderLen, buf + kHeaderLen, kSeqLen);
    f[kPayloadOffset] = static_cast<std::uint8_t>(off);
    f[kPayloadOffset + 1] = static_cast<std::uint8_t>(off >> 8);
    std::memcpy(f + kPayloadOffset + kFragmentOffsetLen, buf + kPayloadOffset + off, len);
    const bool last = off + len == n;
    const auto flags = static_cast<std::uint8_t>(flag::kFragment | (last ? flag::kLastFragment : 0));
    if (!emit(&s, to, PacketType::Data, slot, f, kSeqLen + kFragmentOffsetLen + len, 0, flags)) return false;
    c_.add(Counter::TxFragments);
  }
  c_.add(Counter::TxFragmented);
  return true;
}

// A Ping's first 8 bytes come back in the Pong (the prober matches and times them),
// followed by the Data bytes this session has received (the peer measures what its path
// delivers), the packets received and the packets sent up to the last one received (the
// peer measures what its path loses), and this side's clock as the Ping is answered (the
// peer measures the queue on its way here apart from the way back).
// A Ping may be padded (path-MTU probes): the Pong is padded to the same size (as far
// as a slot holds), so that its answer says the path carries that size both ways.
Worker::Loop::Step Worker::Loop::send_pong(Session& s, const std::uint8_t* body, std::size_t n) noexcept {
  if (n < 8) return drop(Counter::DropMalformed);
  if (tx_.free.empty() || fds_[s.socket] < 0) return drop(Counter::DropTxNoRoom);
  const std::uint16_t slot = take_slot();
  std::uint8_t* buf = slot_mem(slot);
  const std::size_t len = std::clamp(n, kPongBody, cfg_.max_packet - kHeaderLen - kTagLen);
  if (len > kPongBody) std::memset(buf + kHeaderLen + kPongBody, 0, len - kPongBody);
  std::memcpy(buf + kHeaderLen, body, 8);
  store_le64(buf + kHeaderLen + 8, s.rx_bytes.load(std::memory_order_relaxed));
  store_le64(buf + kHeaderLen + 16, s.rx_packets.load(std::memory_order_relaxed));
  store_le64(buf + kHeaderLen + 24, rx_expected(s));
  store_le64(buf + kHeaderLen + 32, static_cast<std::uint64_t>(io::monotonic_ns()));
  emit(&s, s.peer_copy(), PacketType::Pong, slot, buf, len);
  return done();
}

// --- 4. seal, 5. send --------------------------------------------------------------

// Writes the header in front of buf[kHeaderLen, kHeaderLen + body), seals in place with
// this worker's counter and hands the datagram to the sender; the slot is freed on its
// completion. False (slot freed, drop counted) when the session's keys are used up or the
// cipher failed.
bool Worker::Loop::emit(Session* s, const io::Endpoint& to, PacketType type, std::uint16_t slot, std::uint8_t* buf,
                        std::size_t body, std::uint8_t aux, std::uint8_t flags) noexcept {
  if (s->tx.get(cfg_.id) == nullptr) {  // this worker's first packet on the session
    c_.add(Counter::DropNoMemory);
    tx_.free.push_back(slot);
    return false;
  }
  const std::size_t len = seal_transport(*s, cfg_.id, type, buf, body, aux, flags);
  if (len == 0) {
    c_.add(keys_used_up(*s, cfg_.id) ? Counter::DropKeysUsedUp : Counter::DropSealFailed);
    tx_.free.push_back(slot);
    return false;
  }
  sender_.add(fds_[s->socket], to, buf, len, slot);
  return true;
}

}  // namespace triglav::dp
