// Receive (uplinks -> TUN), per completion of a multishot recvmsg:
//   1. io (on_recv): the datagram is in a provided buffer (BufRing), which belongs to the
//      worker from the completion on. With UDP GRO (probed at start) one buffer holds up
//      to 64 KB: consecutive datagrams of one size from one sender, cut apart again here
//      by the size the kernel reports. Each datagram then takes the steps below; each
//      step goes on, stops (handed on, answered) or names the reason to drop, which
//      receive() alone counts.
//   2. classify: header check, session lookup by receiver index. A datagram that is not
//      a transport packet goes to
//   3. screen: the server's HandshakeGate (initiations, path-MTU probes), or, on a
//      client, only handshake and Error packets for a handshake in progress; those go
//      to the control thread's queue as copies.
//   4. open: AEAD in place (the header is the associated data); only then the replay
//      window, the session's confirmation, peer roaming and the last receive time.
//   5. to_control: Close, Pong and Control bodies go to the control thread; a Ping is
//      answered with a Pong from here (tx.cc).
//   6. accept: a Data packet's inner packet must be IP and come from an address the
//      client owns; copies from other uplinks are dropped (dedup by sequence number).
//      A tunnel fragment (flag FRAGMENT) is copied into the worker's reassembly table
//      first (reassemble); the packet it completes takes this step from there.
//   7. deliver (tun_write.cc): an io_uring write of the inner packet, pointing into the
//      receive buffer; the buffer returns to the BufRing when its last write completes.
//      A reassembled packet is written from its table entry, which is free again when
//      the write completes.
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "dataplane/socket_filter.h"
#include "dataplane/worker/loop.h"

namespace triglav::dp {

Worker::Loop::Rx::Rx(io::Ring& ring, bool gro_supported)
    : gro(gro_supported),
      buffers(ring, 0, gro ? kRxGroBuffers : kRxBuffers,
              (gro ? kGroBufferPayload : max_packet_for(kMaxMtu)) + sizeof(io_uring_recvmsg_out) +
                  sizeof(sockaddr_storage) + kControlSpace),
      refs(gro ? kRxGroBuffers : kRxBuffers, 0),
      rearm(kMaxUplinks, false) {
  msg.msg_namelen = sizeof(sockaddr_storage);
  msg.msg_controllen = gro ? kControlSpace : 0;  // room for the UDP_GRO segment size
}

void Worker::Loop::on_recv(unsigned uplink, const io_uring_cqe* cqe) noexcept {
  if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
    if (cqe->res == -ENOBUFS) c_.add(Counter::RxNoBuffers);
    return;  // error without a buffer: the request ended, run() re-arms it
  }
  const auto bid = static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
  io_uring_recvmsg_out* out = io_uring_recvmsg_validate(rx_.buffers.buf(bid), cqe->res, &rx_.msg);
  if (out == nullptr || (out->flags & MSG_TRUNC)) {
    c_.add(Counter::DropTruncated);
    return release_buffer(bid, 0);
  }
  auto* payload = static_cast<std::uint8_t*>(io_uring_recvmsg_payload(out, &rx_.msg));
  const std::size_t total = io_uring_recvmsg_payload_length(out, cqe->res, &rx_.msg);
  // Every datagram of a GRO batch comes from the same sender: one endpoint per buffer.
  const socklen_t from_len = out->namelen > sizeof(sockaddr_storage) ? sizeof(sockaddr_storage) : out->namelen;
  const io::Endpoint from =
      io::Endpoint::from_sockaddr(static_cast<const sockaddr*>(io_uring_recvmsg_name(out)), from_len);
  std::size_t seg = total;  // GRO: the datagrams' size, the last one may be shorter
  for (cmsghdr* cm = io_uring_recvmsg_cmsg_firsthdr(out, &rx_.msg); cm != nullptr;
       cm = io_uring_recvmsg_cmsg_nexthdr(out, &rx_.msg, cm)) {
    if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
      int v = 0;
      std::memcpy(&v, CMSG_DATA(cm), sizeof v);
      if (v > 0) seg = static_cast<std::size_t>(v);
    }
  }
  if (seg < total) c_.add(Counter::RxGroReceives);
  // At least once: an empty datagram is classified (and counted) like any other.
  tw_.buf_writes = 0;
  for_each_segment(total, seg, [&](std::size_t off, std::size_t len) { receive(uplink, bid, payload + off, len, from); });
  flush_run(bid);
  release_buffer(bid, tw_.buf_writes);
}

// One datagram (of a buffer that may hold several) through the steps. True when its
// inner packet went to the TUN, pointing into the buffer.
bool Worker::Loop::receive(unsigned uplink, std::uint16_t bid, std::uint8_t* pkt, std::size_t len,
                           const io::Endpoint& from) noexcept {
  Header h;
  Session* s = nullptr;
  std::size_t inner_len = 0;
  Step st = classify({pkt, len}, h, s);
  if (st.kind == Step::Next && s == nullptr) st = screen(uplink, h, pkt, len, from);
  if (st.kind == Step::Next) st = open(*s, h, pkt, len, from);
  const std::size_t body = len - kHeaderLen - kTagLen;  // used only once open() passed
  if (st.kind == Step::Next) st = to_control(*s, uplink, h, pkt + kHeaderLen, body, from);
  if (st.kind == Step::Next && h.type == PacketType::Data && (h.flags & flag::kFragment) != 0)
    st = reassemble(*s, h, bid, pkt + kHeaderLen, body);
  if (st.kind == Step::Next) st = accept(*s, h, pkt + kHeaderLen, body, inner_len);
  if (st.kind == Step::Next && (h.aux & kDataStriped) != 0) return reorder(*s, h, bid, pkt + kHeaderLen, body, inner_len);
  if (st.kind == Step::Next) {
    deliver(bid, pkt + kPayloadOffset, inner_len, (h.aux & kDataChecksumPartial) != 0);
    return true;
  }
  if (st.kind == Step::Drop) c_.add(st.why);
  return false;
}

// The header, and for a transport packet its session (s stays null for the others).
Worker::Loop::Step Worker::Loop::classify(std::span<const std::uint8_t> pkt, Header& h, Session*& s) noexcept {
  if (decode_header(pkt, h) != HeaderError::Ok) return drop(Counter::DropMalformed);
  if (!is_transport(h.type)) return next();
  if (pkt.size() < kHeaderLen + kTagLen) return drop(Counter::DropMalformed);
  s = snap_->find_index(h.receiver);
  if (s == nullptr) {
    // Perhaps a session published after this batch began: a handshake (a rekey) the
    // control thread answered while we were busy, whose peer already uses it. A newer
    // snapshot is safe to take mid-batch: nothing we hold is freed before quiescent().
    const Snapshot* latest = cfg_.snapshots->load();
    if (latest != snap_) {
      snap_ = latest;
      s = snap_->find_index(h.receiver);
    }
    if (s == nullptr) return drop(Counter::DropUnknownIndex);
  }
  if ((h.counter >> kSenderShift) >= kMaxSenders) return drop(Counter::DropMalformed);
  return next();
}

// Unencrypted: handshake, cookie reply, Error or path-MTU probe.
Worker::Loop::Step Worker::Loop::screen(unsigned uplink, const Header& h, const std::uint8_t* pkt, std::size_t len,
                                        const io::Endpoint& from) noexcept {
  if (gate_) {
    const HandshakeGate::Outcome o = gate_->screen(h, {pkt, len}, from, now_);
    using Action = HandshakeGate::Outcome::Action;
    if (o.action == Action::Drop) return drop(o.count);
    if (o.action == Action::Reply) {
      const bool sent = ::sendto(fds_[uplink], o.reply.data(), o.len, MSG_DONTWAIT, from.sa(), from.len) ==
                        static_cast<ssize_t>(o.len);
      if (!sent) return drop(Counter::UdpSendErrors);
      if (o.count != Counter::kCount) c_.add(o.count);
      return done();
    }
    if (o.count != Counter::kCount) c_.add(o.count);  // a bad mac1 that still goes on
  } else if (cfg_.pending_handshakes != nullptr && !cfg_.pending_handshakes->expects(h.receiver)) {
    return drop(Counter::DropStrayHandshake);  // a response, cookie reply or Error for no handshake of ours
  }
  hand_to_control(ControlMessage::Kind::Packet, uplink, 0, pkt, len, &from);
  return done();
}

Worker::Loop::Step Worker::Loop::open(Session& s, const Header& h, std::uint8_t* pkt, std::size_t len,
                                      const io::Endpoint& from) noexcept {
  const auto sender = static_cast<unsigned>(h.counter >> kSenderShift);
  if (!s.rx_key.open(h.counter, {pkt, kHeaderLen}, pkt + kHeaderLen, len - kHeaderLen))
    return drop(Counter::DropAuth);
  ReplayWindow* window = s.rx_windows.get(sender);
  if (window == nullptr) return drop(Counter::DropNoMemory);
  if (!window->check_and_update(h.counter)) return drop(Counter::DropReplay);
  s.rx_packets.fetch_add(1, std::memory_order_relaxed);  // what the path delivered, for the peer's loss figure
  if ((s.rx_senders.load(std::memory_order_relaxed) >> sender & 1) == 0)
    s.rx_senders.fetch_or(std::uint32_t{1} << sender, std::memory_order_relaxed);
  if (!s.confirmed.load(std::memory_order_relaxed)) {
    // The peer holds the keys: a server routes the session only from now on, so tell
    // the control thread at once rather than at its next round.
    s.confirmed.store(true, std::memory_order_relaxed);
    wake_control();
  }
  // Authenticated: the peer may have moved (NAT rebinding, roaming). Not for benchmark
  // sessions: a spoofed source would turn the server's download into a flood of someone
  // else.
  if (!s.group->sink && !s.peer.is(from)) s.set_peer(from);
  s.last_rx_ns.store(now_, std::memory_order_relaxed);
  return next();
}

// What the session says to the control thread, and Pings (answered from here).
Worker::Loop::Step Worker::Loop::to_control(Session& s, unsigned uplink, const Header& h, const std::uint8_t* body,
                                            std::size_t n, const io::Endpoint& from) noexcept {
  switch (h.type) {
    case PacketType::Close:
      hand_to_control(ControlMessage::Kind::Close, uplink, s.local_index, nullptr, 0, &from);
      return done();
    case PacketType::Ping:
      return send_pong(s, body, n);
    case PacketType::Pong:  // a probe answer: the control thread times it
      hand_to_control(ControlMessage::Kind::Pong, uplink, s.local_index, body, std::min(n, kPongBody), &from);
      return done();
    case PacketType::Control:  // e.g. the peer reports one of its uplinks down
      hand_to_control(ControlMessage::Kind::Control, uplink, s.local_index, body,
                      std::min<std::size_t>(n, kControlBodyMax), &from);
      return done();
    case PacketType::Nack:  // the peer asks for striped packets again (tx.cc)
      return answer_nack(s, body, n);
    default:
      return next();
  }
}

// A Data packet's inner packet: its length, once it passed every check.
Worker::Loop::Step Worker::Loop::accept(Session& s, const Header& h, std::uint8_t* body, std::size_t n,
                                        std::size_t& inner_len) noexcept {
  if (h.type != PacketType::Data) return drop(Counter::DropUnexpected);
  const std::size_t trailer = (h.aux & kDataStriped) != 0 ? kFlowSeqLen : 0;  // the flow sequence
  if (n < kSeqLen + trailer) return drop(Counter::DropMalformed);
  return admit(s, data_sender(h, s.peer_takes_repair), load_le32(body), body + kSeqLen, n - kSeqLen - trailer,
               (h.aux & kDataChecksumPartial) != 0, inner_len);
}

// An inner packet (of avail bytes at most) with its sender's sequence number: its
// length, once it passed every check and is the first copy of its number.
Worker::Loop::Step Worker::Loop::admit(Session& s, unsigned sender, std::uint32_t seq, std::uint8_t* inner,
                                       std::size_t avail, bool partial, std::size_t& inner_len) noexcept {
  inner_len = inner_packet_length(inner, avail);
  if (inner_len == 0) return drop(Counter::DropBadInner);
  Group& g = *s.group;
  // Server: a run whose address is still another run's only confirms its sessions.
  if (g.contending.load(std::memory_order_relaxed)) return drop(Counter::DropBadSource);
  if (!source_allowed(g, inner, inner_len)) return drop(Counter::DropBadSource);
  if (const std::uint16_t fit = g.mss_clamp_packet.load(std::memory_order_relaxed); fit != 0)
    (void)clamp_tcp_mss(inner, inner_len, fit, partial);  // a SYN-ACK to us
  s.rx_bytes.fetch_add(inner_len, std::memory_order_relaxed);  // one worker, or two while it roams
  // Copies of a packet sent on several uplinks share its sequence number: deliver once.
  DedupWindow* dedup = g.dedup.get(sender);
  if (dedup == nullptr) return drop(Counter::DropNoMemory);
  if (!dedup->check_and_update(seq)) return drop(Counter::DropDuplicate);
  c_.add(Counter::RxPackets);
  c_.add(Counter::RxBytes, inner_len);
  if (g.sink) return done();  // a benchmark session: counted, and that is all
  return next();
}

// A tunnel fragment: its piece into the reassembly table; the packet it completes (its
// pieces came on this session from one sender) goes through admit() and is written from
// the table. Pieces are not deduplicated (each is its own sealed packet, so the replay
// window already dropped repeats); the whole packet is, like any other. A striped flow's
// packet that was fragmented skips the reorder buffer (its sender sent it unstriped).
Worker::Loop::Step Worker::Loop::reassemble(Session& s, const Header& h, std::uint16_t bid,
                                            const std::uint8_t* body, std::size_t n) noexcept {
  if (n < kSeqLen + kFragmentOffsetLen) return drop(Counter::DropMalformed);
  if (!tw_.frags) {
    ReassemblyConfig rc;
    rc.headroom = kVnetHdrLen;
    rc.max_packet = static_cast<std::uint32_t>(slot_room());
    tw_.frags.emplace(rc);
  }
  const auto sender = static_cast<unsigned>(h.counter >> kSenderShift);
  Reassembly::Piece p;
  p.key = {s.local_index, load_le32(body), static_cast<std::uint8_t>(sender)};
  p.offset = static_cast<std::uint32_t>(body[kSeqLen] | body[kSeqLen + 1] << 8);
  p.data = body + kSeqLen + kFragmentOffsetLen;
  p.len = static_cast<std::uint32_t>(n - kSeqLen - kFragmentOffsetLen);
  p.last = (h.flags & flag::kLastFragment) != 0;
  Reassembly::Done d;
  const Reassembly::Verdict v = tw_.frags->offer(p, now_, d);
  count_reassembly();  // pieces, packets and what was given up
  if (v != Reassembly::Verdict::Complete) return done();
  std::size_t len = 0;
  const Step st = admit(s, sender, p.key.seq, d.data, d.len, false, len);
  if (st.kind != Step::Next) {
    tw_.frags->release(d.entry);
    return st;
  }
  flush_run(bid);  // after what this buffer delivered before it
  std::uint8_t* w = frame_alone(d.data, len, false);
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_write(sqe, cfg_.tun_fd, w, static_cast<unsigned>(len), 0);
  io_uring_sqe_set_data64(sqe, ud(kOpTunFragWrite, d.entry));
  ++tw_.in_flight;
  return done();
}

// A striped packet (strategy aggregate) through its flow's reorder buffer: written now
// when it is next in its flow (or late, or not reordered), else held; either way what it
// lets go follows in order. True when it was written, pointing into the buffer.
bool Worker::Loop::reorder(const Session& s, const Header& h, std::uint16_t bid, std::uint8_t* body, std::size_t n,
                           std::size_t inner_len) noexcept {
  if (!tw_.reorder) {
    ReorderConfig rc;
    rc.headroom = kVnetHdrLen;
    rc.slot_bytes = static_cast<std::uint32_t>(cfg_.max_packet);
    tw_.reorder.emplace(rc);
  }
  std::uint8_t* inner = body + kSeqLen;
  const bool partial = (h.aux & kDataChecksumPartial) != 0;
  Reorder::Packet p;
  p.client = s.group->client_id;
  p.sender = static_cast<std::uint8_t>(data_sender(h, s.peer_takes_repair));
  p.resent = is_resent(h, s.peer_takes_repair);
  p.repair_ns = s.peer_takes_repair ? s.group->repair_wait_ns.load(std::memory_order_relaxed) : 0;
  p.uplink = h.uplink;
  p.send_seq = load_le32(body);
  p.flow_seq = load_le32(body + n - kFlowSeqLen);
  p.flow = flow_hash(inner, inner_len);
  p.data = inner;
  p.len = static_cast<std::uint32_t>(inner_len);
  p.partial = partial;
  // The uplinks the missing packets may be on: the live ones the peer stripes over.
  const UplinkMask live = s.group->live_uplinks.load(std::memory_order_relaxed);
  const UplinkMask striped = live & s.group->peer_striped.load(std::memory_order_relaxed);
  p.uplinks = striped != 0 ? striped : live;
  if (cfg_.workers > 1 && steered_worker(h.receiver, cfg_.workers) != cfg_.id) {
    // Not ours to reorder (the peer's other packets reach the worker its receiver index
    // names): delivered as it came rather than starting a second state for its flow.
    c_.add(Counter::RxReorderOtherWorker);
    deliver(bid, inner, inner_len, partial);
    return true;
  }
  const auto v = tw_.reorder->offer(p, s.group->reorder_wait_ns.load(std::memory_order_relaxed), now_);
  if (tw_.reorder->asking()) ask_repairs(*s.group);
  switch (v) {
    case Reorder::Verdict::Deliver:
      deliver(bid, inner, inner_len, partial);
      if (tw_.reorder->ready()) {  // after this packet, ahead of the next
        flush_run(bid);
        write_held();
      }
      return true;
    case Reorder::Verdict::DrainFirst:
      flush_run(bid);
      write_held();
      deliver(bid, inner, inner_len, partial);
      return true;
    case Reorder::Verdict::Held:
      if (tw_.reorder->ready()) {
        flush_run(bid);
        write_held();
      }
      return false;
    case Reorder::Verdict::Duplicate:
      break;
  }
  c_.add(Counter::DropDuplicate);
  return false;
}

// The reorder buffer declared gaps lost: each is asked of the peer in a Nack naming the
// numbers between the packets on either side of it that never arrived (at most the 64
// just before the later one), on the live uplink of the least RTT.
void Worker::Loop::ask_repairs(Group& g) noexcept {
  Session* best = nullptr;
  if (const GroupRoute* r = route_of(g); r != nullptr) {
    double best_rtt = 0;
    for (std::size_t i = 0; i < r->n_views; ++i) {
      Session* s = r->uplinks[i];
      if (s == nullptr || !s->peer_takes_repair || fds_[s->socket] < 0 || r->views[i].state == HealthState::Down ||
          !s->confirmed.load(std::memory_order_relaxed))
        continue;
      const double rtt = r->views[i].srtt_ms < 0 ? 1e9 : r->views[i].srtt_ms;
      if (best == nullptr || rtt < best_rtt) {
        best = s;
        best_rtt = rtt;
      }
    }
  }
  tw_.reorder->drain_asks([&](const Reorder::Ask& a) {
    const DedupWindow* dedup = g.dedup.find(a.sender);
    if (best == nullptr || a.client != g.client_id || dedup == nullptr ||
        static_cast<std::int32_t>(a.before - a.after) <= 1)
      return;
    Nack k;
    k.origin = a.sender;
    k.base = a.before - a.after - 1 > 64 ? a.before - 64 : a.after + 1;
    for (std::uint32_t i = 0; k.base + i != a.before; ++i)
      if (!dedup->seen(k.base + i)) k.bits |= std::uint64_t{1} << i;
    if (k.bits == 0) return;
    const io::Endpoint to = best->peer_copy();
    if (tx_.free.empty() || to.len == 0) {
      c_.add(Counter::DropTxNoRoom);
      return;
    }
    const std::uint16_t slot = take_slot();
    std::uint8_t* buf = slot_mem(slot);
    encode_nack(k, buf + kHeaderLen);
    if (emit(best, to, PacketType::Nack, slot, buf, kNackLen)) c_.add(Counter::TxRepairRequests);
  });
}

// Server: a client may only send from its own addresses. IPv4: its tunnel address or a
// network routed to it; IPv6: prefix::its address. (A client's group has no address:
// anything from the server goes.)
bool Worker::Loop::source_allowed(const Group& g, const std::uint8_t* inner, std::size_t n) const noexcept {
  if (g.inner_ipv4_be == 0) return true;
  std::uint32_t src = 0;
  if ((inner[0] >> 4) == 4) {
    std::memcpy(&src, inner + 12, 4);
    return g.owns(src);
  }
  return n >= 40 && snap_->ipv6_client(inner + 8, src) && src == g.inner_ipv4_be;
}

}  // namespace triglav::dp
