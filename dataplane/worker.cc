// Worker event loop.
//
// Receive (uplinks -> TUN), per completion batch:
//   1. io: multishot recvmsg on each uplink socket fills provided buffers (BufRing);
//      the buffer belongs to the worker from the completion on. With UDP GRO (probed
//      at start) one buffer holds up to 64 KB: consecutive datagrams of one size from
//      one sender, cut apart again here by the size the kernel reports.
//   2. classify: header check, session lookup by receiver index. Handshake and Error
//      packets are copied to the control thread's queue; the buffer is recycled.
//   3. open in place (AEAD over header = associated data); only then replay window,
//      inner packet checks, source address check, peer roaming, last-receive time.
//   4. emit: an io_uring write of the inner packet to the TUN queue, pointing into the
//      receive buffer; the buffer returns to the BufRing when the last of its writes
//      completes.
//
// Transmit (TUN -> uplinks), when the TUN queue is readable:
//   1. read() inner packets (non-blocking, up to kBatch per loop) straight into a free
//      transmit slot at the payload offset, leaving headroom for the header and sequence
//      number and tailroom for the tag.
//   2. route: the client sends everything to its session; the server picks the session
//      by inner destination address.
//   3. seal in place with this worker's counter (sender id in the top bits).
//   4. emit: consecutive datagrams of one size to one peer on one socket are gathered
//      into one sendmsg with UDP GSO (UDP_SEGMENT, one iovec per slot, up to 64 or
//      64 KB), submitted at the end of the loop iteration; the slots are free again on
//      its completion. Without kernel GSO support every datagram is its own sendmsg.
#include "dataplane/worker.h"

#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <bit>

#include "crypto/aead.h"
#include "dataplane/flow.h"
#include "dataplane/offload.h"
#include "io/clock.h"
#include "io/ring.h"
#include "io/system.h"

namespace triglav::dp {
namespace {

enum Op : std::uint64_t { kOpRecv = 1, kOpTunPoll, kOpStop, kOpTunWrite, kOpSend, kOpCommand, kOpTunGroWrite };
constexpr int kOpShift = 56;
constexpr std::uint64_t ud(Op op, std::uint64_t idx) { return std::uint64_t{op} << kOpShift | idx; }

constexpr unsigned kRingEntries = 512;
constexpr unsigned kRxBuffers = 1024;        // without GRO: one datagram each
constexpr unsigned kRxGroBuffers = 256;       // with GRO: up to 64 KB each
constexpr std::size_t kGroBufferPayload = 65536;
constexpr unsigned kTxSlots = 512;
constexpr unsigned kBatch = 64;
constexpr std::size_t kPayloadOffset = kHeaderLen + kSeqLen;
constexpr std::size_t kPongBody = 16;  // echoed Ping body (8), Data bytes received (8)
constexpr std::size_t kControlSpace = 64;  // recvmsg control room (holds the UDP_GRO cmsg)
constexpr unsigned kMaxSegments = 64;          // datagrams per GSO send (the kernel's limit)
constexpr std::size_t kMaxGsoBytes = 65000;    // and their total, within one IP datagram
constexpr std::size_t kMaxGsoSegment4 = 1500 - 28;  // a datagram that fits a 1500-byte path
constexpr std::size_t kMaxGsoSegment6 = 1500 - 48;
constexpr std::size_t kTunReadMax = 65535 + 64;  // a TUN super-packet (IP length) and some slack
constexpr unsigned kGroWrites = 512;             // super-packet TUN writes in flight at most

}  // namespace

std::size_t max_packet_for(int mtu) noexcept {
  const std::size_t need = static_cast<std::size_t>(std::max(mtu, 0)) + kPayloadOffset + kTagLen;
  return std::max<std::size_t>(2048, (need + 63) / 64 * 64);
}

class Worker::Loop {
 public:
  Loop(const WorkerConfig& cfg, Counters& counters, int stop_fd, int cmd_fd, CommandQueue& commands)
      : cfg_(cfg),
        c_(counters),
        stop_fd_(stop_fd),
        cmd_fd_(cmd_fd),
        commands_(commands),
        ring_(kRingEntries),
        gro_(io::udp_gro_supported()),
        rx_(ring_, 0, gro_ ? kRxGroBuffers : kRxBuffers,
            (gro_ ? kGroBufferPayload : max_packet_for(kMaxMtu)) + sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_storage) +
                kControlSpace),
        rx_refs_(gro_ ? kRxGroBuffers : kRxBuffers, 0),
        tx_mem_(std::size_t{kTxSlots} * cfg.max_packet),
        tun_buf_(cfg.tun_vnet_hdr ? kVnetHdrLen + kTunReadMax : 0),
        gro_writes_(cfg.tun_vnet_hdr ? kGroWrites : 0),
        batches_(kTxSlots),
        rearm_(kMaxUplinks, false),
        gso_(io::udp_gso_supported()) {
    fds_.fill(-1);
    for (std::size_t i = 0; i < cfg.uplink_fds.size() && i < kMaxUplinks; ++i) fds_[i] = cfg.uplink_fds[i];
    recv_msg_.msg_namelen = sizeof(sockaddr_storage);
    recv_msg_.msg_controllen = gro_ ? kControlSpace : 0;  // room for the UDP_GRO segment size
    for (int fd : fds_) enable_gro(fd);
    for (unsigned i = 0; i < kTxSlots; ++i) free_.push_back(static_cast<std::uint16_t>(kTxSlots - 1 - i));
    for (unsigned i = 0; i < kTxSlots; ++i) free_batches_.push_back(static_cast<std::uint16_t>(kTxSlots - 1 - i));
    open_.reserve(kTxSlots);
    for (unsigned i = 0; i < gro_writes_.size(); ++i) free_gro_.push_back(static_cast<std::uint16_t>(i));
    if (cfg.handshake_keys) {
      GuardConfig g;
      g.load = cfg.guard_load;
      g.relay = cfg.relay_sources;
      guard_.emplace(*cfg.handshake_keys, g);
    }
  }

  void run() noexcept {
    for (unsigned u = 0; u < kMaxUplinks; ++u)
      if (fds_[u] >= 0) arm_recv(u);
    arm_poll(cfg_.tun_fd, kOpTunPoll);
    arm_poll(stop_fd_, kOpStop);
    arm_poll(cmd_fd_, kOpCommand);
    Qsbr& q = *cfg_.qsbr;
    q.online(cfg_.id);
    while (running_) {
      const bool can_tx = tx_work();
      if (can_tx) {
        io_uring_submit(ring_.get());
      } else {
        crypto::forget_thread_keys();  // idle: no session key waits in OpenSSL's context
        q.offline(cfg_.id);
        io_uring_submit_and_wait(ring_.get(), 1);
        q.online(cfg_.id);
      }
      now_ = io::coarse_ns();
      snap_ = cfg_.snapshots->load();
      generating_ = false;
      for (const GroupRoute* r : snap_->generate) generating_ |= owned_streams(*r) > 0;
      recycled_ = 0;
      drain_completions();
      if (tx_work()) {
        if (tun_ready_ || pending_.active) tx_batch();
        if (generating_) generate();
      }
      rx_.flush();
      for (unsigned u = 0; u < rearm_.size(); ++u) {
        if (rearm_[u] && fds_[u] < 0) rearm_[u] = false;  // the uplink went away
        if (rearm_[u] && (recycled_ > 0 || tun_writes_ == 0)) {
          rearm_[u] = false;
          arm_recv(u);
        }
      }
      flush_sends();
      if (unreleased_ != 0) report_releases();
      snap_ = nullptr;
      q.quiescent(cfg_.id);
      crypto::forget_retired_keys();  // a freed session's key waits in no OpenSSL context
    }
    q.offline(cfg_.id);
    crypto::forget_thread_keys();
    cancel_all();
  }

  // Cancels every request and reaps the completions, so that when the ring goes away no
  // request still holds the TUN queue or a socket: the process must leave the device and
  // the port free the moment it exits. Bounded: at most ~1 s.
  void cancel_all() noexcept {
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, 0);
    io_uring_submit(ring_.get());
    for (int quiet = 0, rounds = 0; quiet < 2 && rounds < 100; ++rounds) {
      __kernel_timespec ts{0, 10'000'000};
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe_timeout(ring_.get(), &cqe, &ts) != 0) {
        ++quiet;
        continue;
      }
      quiet = 0;
      unsigned head, n = 0;
      io_uring_for_each_cqe(ring_.get(), head, cqe) { ++n; }
      io_uring_cq_advance(ring_.get(), n);
    }
  }

 private:
  // One sendmsg: 1..kMaxSegments sealed datagrams in their slots, all `seg` bytes long
  // but the last (which may be shorter), to one peer through one socket.
  struct SendBatch {
    msghdr msg{};
    std::array<iovec, kMaxSegments> iov{};
    std::array<std::uint16_t, kMaxSegments> slot{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))]{};
    io::Endpoint to;
    int fd = -1;
    unsigned n = 0;
    std::size_t seg = 0;
    bool closed = false;  // a shorter datagram ended it
  };

  void arm_recv(unsigned uplink) noexcept {
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_recvmsg_multishot(s, fds_[uplink], &recv_msg_, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = rx_.group();
    io_uring_sqe_set_data64(s, ud(kOpRecv, uplink));
  }

  void arm_poll(int fd, Op op) noexcept {
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_poll_multishot(s, fd, POLLIN);
    io_uring_sqe_set_data64(s, ud(op, 0));
  }

  void drain_completions() noexcept {
    io_uring_cqe* cqes[kBatch * 2];
    for (;;) {
      const unsigned n = io_uring_peek_batch_cqe(ring_.get(), cqes, kBatch * 2);
      if (n == 0) return;
      for (unsigned i = 0; i < n; ++i) complete(cqes[i]);
      io_uring_cq_advance(ring_.get(), n);
      if (n < kBatch * 2) return;
    }
  }

  void complete(const io_uring_cqe* cqe) noexcept {
    const std::uint64_t data = io_uring_cqe_get_data64(cqe);
    const auto op = static_cast<Op>(data >> kOpShift);
    const std::uint64_t idx = data & ((std::uint64_t{1} << kOpShift) - 1);
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    switch (op) {
      case kOpRecv:
        on_recv(static_cast<unsigned>(idx), cqe);
        if (!more) rearm_[idx] = true;
        break;
      case kOpTunPoll:
        tun_ready_ = true;
        if (!more) arm_poll(cfg_.tun_fd, kOpTunPoll);
        break;
      case kOpStop:
        running_ = false;
        break;
      case kOpCommand:
        run_commands();
        if (!more) arm_poll(cmd_fd_, kOpCommand);
        break;
      case kOpTunGroWrite: {
        const std::uint16_t slot = static_cast<std::uint16_t>(idx);
        free_gro_.push_back(slot);
        tun_written(gro_writes_[slot].bid, cqe->res);
        break;
      }
      case kOpTunWrite:
        tun_written(static_cast<std::uint16_t>(idx), cqe->res);
        break;
      case kOpSend: {
        SendBatch& b = batches_[idx];
        const int res = cqe->res;
        if (res < 0 && b.n > 1 && (res == -EIO || res == -EINVAL || res == -EOPNOTSUPP || res == -EMSGSIZE)) {
          // A device or path that refuses segmentation: these ones one by one, and from
          // now on no segmented sends of datagrams above a 1500-byte path's (a jumbo TUN
          // MTU over an uplink with a smaller MTU), or none at all if even those failed.
          const std::size_t small = b.to.family() == AF_INET6 ? kMaxGsoSegment6 : kMaxGsoSegment4;
          if (b.seg > small && jumbo_gso_) jumbo_gso_ = false;
          else gso_ = false;
          resend_one_by_one(static_cast<std::uint16_t>(idx));
          break;
        }
        if (res < 0) c_.add(Counter::UdpSendErrors, b.n);
        for (unsigned i = 0; i < b.n; ++i) free_.push_back(b.slot[i]);
        b.n = 0;
        free_batches_.push_back(static_cast<std::uint16_t>(idx));
        break;
      }
    }
  }

  // A TUN write into receive buffer bid completed: the buffer goes back to the ring
  // when its last one has.
  void tun_written(std::uint16_t bid, int res) noexcept {
    --tun_writes_;
    if (res < 0) c_.add(Counter::TunWriteErrors);
    if (--rx_refs_[bid] == 0) {
      rx_.recycle(bid);
      ++recycled_;
    }
  }

  // Uplinks come and go at run time (auto-discovery). A removed uplink's receive is
  // cancelled and the control thread told, so it closes the socket only once this ring
  // no longer submits anything on it.
  void run_commands() noexcept {
    std::uint64_t v;
    [[maybe_unused]] auto r = read(cmd_fd_, &v, sizeof v);
    UplinkCommand c;
    while (commands_.pop(c)) {
      if (c.id >= kMaxUplinks) continue;
      if (c.fd >= 0) {
        fds_[c.id] = c.fd;
        enable_gro(c.fd);
        arm_recv(c.id);
        continue;
      }
      if (fds_[c.id] >= 0) {
        io_uring_sqe* s = ring_.sqe();
        io_uring_prep_cancel64(s, ud(kOpRecv, c.id), 0);
        io_uring_sqe_set_data64(s, 0);
        fds_[c.id] = -1;
      }
      io_uring_submit(ring_.get());
      unreleased_ |= UplinkMask{1} << c.id;
    }
    report_releases();
  }

  // The control thread closes an uplink's sockets only once every worker said it let go:
  // an answer that finds the queue full is sent again later, never dropped.
  void report_releases() noexcept {
    for (UplinkMask m = unreleased_; m != 0; m &= m - 1) {
      const unsigned id = static_cast<unsigned>(std::countr_zero(m));
      if (!hand_to_control(ControlMessage::Kind::UplinkReleased, id, 0, nullptr, 0, nullptr)) return;
      unreleased_ &= ~(UplinkMask{1} << id);
    }
  }

  // --- receive ---------------------------------------------------------------------

  void on_recv(unsigned uplink, const io_uring_cqe* cqe) noexcept {
    if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
      if (cqe->res == -ENOBUFS) c_.add(Counter::RxNoBuffers);
      return;  // error without a buffer: the request ended, run() re-arms it
    }
    const auto bid = static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    std::uint8_t* buf = rx_.buf(bid);
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe->res, &recv_msg_);
    unsigned writes = 0;
    if (out == nullptr || (out->flags & MSG_TRUNC)) {
      c_.add(Counter::DropMalformed);
    } else {
      auto* payload = static_cast<std::uint8_t*>(io_uring_recvmsg_payload(out, &recv_msg_));
      const std::size_t total = io_uring_recvmsg_payload_length(out, cqe->res, &recv_msg_);
      // Every datagram of a GRO batch comes from the same sender: one endpoint per buffer.
      const socklen_t from_len = out->namelen > sizeof(sockaddr_storage) ? sizeof(sockaddr_storage) : out->namelen;
      const io::Endpoint from =
          io::Endpoint::from_sockaddr(static_cast<const sockaddr*>(io_uring_recvmsg_name(out)), from_len);
      std::size_t seg = total;  // GRO: the datagrams' size, the last one may be shorter
      for (cmsghdr* cm = io_uring_recvmsg_cmsg_firsthdr(out, &recv_msg_); cm != nullptr;
           cm = io_uring_recvmsg_cmsg_nexthdr(out, &recv_msg_, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
          int v = 0;
          std::memcpy(&v, CMSG_DATA(cm), sizeof v);
          if (v > 0) seg = static_cast<std::size_t>(v);
        }
      }
      if (seg < total) c_.add(Counter::RxGroReceives);
      // At least once: an empty datagram is classified (and counted) like any other.
      buf_writes_ = 0;
      for_each_segment(total, seg, [&](std::size_t off, std::size_t len) {
        handle_datagram(uplink, bid, payload + off, len, from);
      });
      flush_run(bid);
      writes = buf_writes_;
    }
    if (writes == 0) {
      rx_.recycle(bid);
      ++recycled_;
    } else {
      rx_refs_[bid] = static_cast<std::uint16_t>(writes);
    }
  }

  // Asks the kernel to hand over coalesced datagrams (best effort: without it they come
  // one by one, which the loop handles the same way).
  void enable_gro(int fd) noexcept {
    if (!gro_ || fd < 0) return;
    const int one = 1;
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
  }

  // One datagram (of a buffer that may hold several). True when its inner packet goes
  // to the TUN (deliver), pointing into the buffer.
  bool handle_datagram(unsigned uplink, std::uint16_t bid, std::uint8_t* pkt, std::size_t len,
                       const io::Endpoint& from) noexcept {
    Header h;
    if (decode_header({pkt, len}, h) != HeaderError::Ok) {
      c_.add(Counter::DropMalformed);
      return false;
    }
    if (!is_transport(h.type)) {
      if (guard_) {
        if (!guard_initiation(uplink, h, pkt, len, from)) return false;
      } else if (cfg_.pending_handshakes != nullptr && !cfg_.pending_handshakes->expects(h.receiver)) {
        c_.add(Counter::DropStrayHandshake);  // a response, cookie reply or Error for no handshake of ours
        return false;
      }
      hand_to_control(ControlMessage::Kind::Packet, uplink, 0, pkt, len, &from);
      return false;
    }
    if (len < kHeaderLen + kTagLen) {
      c_.add(Counter::DropMalformed);
      return false;
    }
    const unsigned sender = static_cast<unsigned>(h.counter >> kSenderShift);
    Session* s = snap_->find_index(h.receiver);
    if (s == nullptr) {
      // Perhaps a session published after this batch began: a handshake (a rekey) the
      // control thread answered while we were busy, whose peer already uses it. A newer
      // snapshot is safe to take mid-batch: nothing we hold is freed before quiescent().
      const Snapshot* latest = cfg_.snapshots->load();
      if (latest != snap_) {
        snap_ = latest;
        s = snap_->find_index(h.receiver);
      }
      if (s == nullptr) {
        c_.add(Counter::DropUnknownIndex);
        return false;
      }
    }
    if (sender >= kMaxSenders) {
      c_.add(Counter::DropMalformed);
      return false;
    }
    if (!s->rx_key.open(h.counter, {pkt, kHeaderLen}, pkt + kHeaderLen,
                               len - kHeaderLen)) {
      c_.add(Counter::DropAuth);
      return false;
    }
    if (!s->rx_windows[sender].check_and_update(h.counter)) {
      c_.add(Counter::DropReplay);
      return false;
    }
    if (!s->confirmed.load(std::memory_order_relaxed)) {
      // The peer holds the keys: a server routes the session only from now on, so tell
      // the control thread at once rather than at its next round.
      s->confirmed.store(true, std::memory_order_relaxed);
      wake_control();
    }
    // Authenticated: the peer may have moved (NAT rebinding, roaming).
    // Not for benchmark sessions: a spoofed source would turn the server's download into
    // a flood of someone else.
    if (!s->group->sink && !s->peer.is(from)) s->set_peer(from);
    s->last_rx_ns.store(now_, std::memory_order_relaxed);
    const std::size_t body = len - kHeaderLen - kTagLen;
    if (h.type == PacketType::Close) {
      hand_to_control(ControlMessage::Kind::Close, uplink, s->local_index, nullptr, 0, &from);
      return false;
    }
    if (h.type == PacketType::Ping) {
      send_pong(s, pkt + kHeaderLen, body);
      return false;
    }
    if (h.type == PacketType::Pong) {  // a probe answer: the control thread times it
      hand_to_control(ControlMessage::Kind::Pong, uplink, s->local_index, pkt + kHeaderLen,
                      std::min<std::size_t>(body, kPongBody), &from);
      return false;
    }
    if (h.type == PacketType::Control) {  // e.g. the peer reports one of its uplinks down
      hand_to_control(ControlMessage::Kind::Control, uplink, s->local_index, pkt + kHeaderLen,
                      std::min<std::size_t>(body, kControlBodyMax), &from);
      return false;
    }
    if (h.type != PacketType::Data || body < kSeqLen) {
      c_.add(h.type == PacketType::Data ? Counter::DropMalformed : Counter::DropUnexpected);
      return false;
    }
    std::uint8_t* inner = pkt + kPayloadOffset;
    std::size_t inner_len = inner_packet_length(inner, body - kSeqLen);
    if (inner_len == 0) {
      c_.add(Counter::DropBadInner);
      return false;
    }
    Group* g = s->group;
    if (g->contending.load(std::memory_order_relaxed)) {  // server: its address is still another run's
      c_.add(Counter::DropBadSource);
      return false;
    }
    if (g->inner_ipv4_be != 0) {  // server: a client may only use its own addresses
      // IPv4: its tunnel address or a network routed to it; IPv6: prefix::its address.
      std::uint32_t src_ip = 0;
      bool ok = false;
      if ((inner[0] >> 4) == 4) {
        std::memcpy(&src_ip, inner + 12, 4);
        ok = g->owns(src_ip);
      } else if (inner_len >= 40) {
        ok = snap_->ipv6_client(inner + 8, src_ip) && src_ip == g->inner_ipv4_be;
      }
      if (!ok) {
        c_.add(Counter::DropBadSource);
        return false;
      }
    }
    s->rx_bytes.fetch_add(inner_len, std::memory_order_relaxed);  // one worker, or two while it roams
    // Copies of a packet sent on several uplinks share its sequence number: deliver once.
    if (!g->dedup[sender].check_and_update(load_le32(pkt + kHeaderLen))) {
      c_.add(Counter::DropDuplicate);
      return false;
    }
    c_.add(Counter::RxPackets);
    c_.add(Counter::RxBytes, inner_len);
    if (g->sink) return false;  // a benchmark session: counted, and that is all
    deliver(bid, inner, inner_len, (h.aux & kDataChecksumPartial) != 0);
    return true;
  }

  // An inner packet (in receive buffer bid, with at least kPayloadOffset spent bytes in
  // front) for the TUN. With offloads, consecutive segments of one TCP flow join a run
  // that goes out as one super-packet (userspace GRO, dataplane/offload.h) when the next
  // packet does not continue it, or the buffer ends; anything else is written alone, in
  // order. A partial packet (its checksum left to the kernel by the sender,
  // kDataChecksumPartial) goes behind a NEEDS_CSUM header, or is completed here for a
  // TUN without offloads.
  void deliver(std::uint16_t bid, std::uint8_t* inner, std::size_t len, bool partial) noexcept {
    if (!cfg_.tun_vnet_hdr) {
      if (partial) complete_partial_checksum(inner, len);
      return write_tun(bid, inner, len);
    }
    if (run_.n > 0 && gro_append(run_, inner, len, partial)) {
      GroWrite& w = gro_writes_[run_slot_];
      w.iov[run_.n - 1] = {inner + run_.hdr_len, len - run_.hdr_len};
      return;
    }
    flush_run(bid);
    if (!free_gro_.empty() && gro_start(run_, inner, len, partial)) {
      run_slot_ = free_gro_.back();
      free_gro_.pop_back();
      return;
    }
    write_alone(bid, inner, len, partial);
  }

  // One packet behind its own virtio_net_hdr, written over the spent bytes in front of
  // it: all zero, or NEEDS_CSUM for a partial TCP/UDP checksum.
  void write_alone(std::uint16_t bid, std::uint8_t* inner, std::size_t len, bool partial) noexcept {
    VnetHdr h;
    if (partial && partial_checksum_hdr(inner, len, h)) store_vnet_hdr(inner - kVnetHdrLen, h);
    else std::memset(inner - kVnetHdrLen, 0, kVnetHdrLen);
    write_tun(bid, inner - kVnetHdrLen, len + kVnetHdrLen);
  }

  void write_tun(std::uint16_t bid, std::uint8_t* p, std::size_t len) noexcept {
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_write(sqe, cfg_.tun_fd, p, static_cast<unsigned>(len), 0);
    io_uring_sqe_set_data64(sqe, ud(kOpTunWrite, bid));
    ++tun_writes_;
    ++buf_writes_;
  }

  // Writes the open run: alone when it has one segment, else as a super-packet behind
  // its virtio_net_hdr (gathered from the buffer: the first segment whole, then the
  // others' payloads).
  void flush_run(std::uint16_t bid) noexcept {
    if (run_.n == 0) return;
    std::uint8_t* first = run_.first;
    const std::size_t first_len = run_.first_len;
    if (run_.n == 1) {
      const bool partial = run_.first_partial;
      free_gro_.push_back(run_slot_);
      run_ = GroRun{};
      return write_alone(bid, first, first_len, partial);
    }
    store_vnet_hdr(first - kVnetHdrLen, gro_finish(run_));
    GroWrite& w = gro_writes_[run_slot_];
    w.bid = bid;
    w.iov[0] = {first - kVnetHdrLen, first_len + kVnetHdrLen};  // iov[1..n-1]: the others' payloads
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_writev(sqe, cfg_.tun_fd, w.iov.data(), run_.n, 0);
    io_uring_sqe_set_data64(sqe, ud(kOpTunGroWrite, run_slot_));
    ++tun_writes_;
    ++buf_writes_;
    c_.add(Counter::TunGroWrites);
    run_ = GroRun{};
  }

  // Server: whether an unencrypted packet may go on to the control thread. Only
  // initiations may; one with a bad mac1 only a few times a second (so that a client
  // holding a wrong AuthKey still hears why from the control thread); under load only
  // one with a valid mac2 (dataplane/handshake_guard.h), the others getting a cookie
  // reply from here or nothing.
  bool guard_initiation(unsigned uplink, const Header& h, const std::uint8_t* pkt, std::size_t len,
                        const io::Endpoint& from) noexcept {
    if (h.type == PacketType::Handshake && h.aux == kHandshakeProbe) {
      echo_probe(uplink, h, pkt, len, from);
      return false;
    }
    if (h.type != PacketType::Handshake || h.aux != kHandshakeInit) {
      c_.add(Counter::DropUnexpected);  // responses, cookie replies and errors are for clients
      return false;
    }
    if (guard_->drop_early({pkt, len}, from, now_)) {  // under load, no budget left for it: no MAC needed
      c_.add(Counter::DropHandshakeRate);
      return false;
    }
    if (!initiation_mac1_ok({pkt, len}, cfg_.handshake_keys->mac1)) {
      c_.add(Counter::DropHandshakeMac);
      if (now_ - bad_mac_window_ns_ >= 1'000'000'000) {
        bad_mac_window_ns_ = now_;
        bad_mac_passed_ = 0;
      }
      return ++bad_mac_passed_ <= kBadMacPerSecond;
    }
    switch (guard_->admit({pkt, len}, from, now_)) {
      case HandshakeGuard::Verdict::Answer: return true;
      case HandshakeGuard::Verdict::SendCookie: {
        const auto reply = guard_->cookie_reply({pkt, len}, from);
        if (::sendto(fds_[uplink], reply.data(), reply.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&from.addr),
                     from.len) == static_cast<ssize_t>(reply.size()))
          c_.add(Counter::TxCookieReplies);
        else
          c_.add(Counter::UdpSendErrors);
        return false;
      }
      case HandshakeGuard::Verdict::Drop:
      case HandshakeGuard::Verdict::RateLimited: c_.add(Counter::DropHandshakeRate); return false;
    }
    return false;
  }

  // A path-MTU probe (`triglav diagnose`): answered from here with a 32-byte echo when its
  // MAC shows the AuthKey. At most kProbesPerSecond a second per worker are looked at
  // (before the MAC, so junk probes cost nothing beyond that), none under load.
  void echo_probe(unsigned uplink, const Header& h, const std::uint8_t* pkt, std::size_t len,
                  const io::Endpoint& from) noexcept {
    if (now_ - probe_window_ns_ >= 1'000'000'000) {
      probe_window_ns_ = now_;
      probes_seen_ = 0;
    }
    if (guard_->under_load() || ++probes_seen_ > kProbesPerSecond) {
      c_.add(Counter::DropHandshakeRate);
      return;
    }
    if (!probe_ok({pkt, len}, cfg_.handshake_keys->mac1)) {
      c_.add(Counter::DropHandshakeMac);
      return;
    }
    const auto echo = probe_echo(static_cast<std::uint32_t>(h.counter), static_cast<std::uint32_t>(len),
                                 cfg_.handshake_keys->mac1);
    if (::sendto(fds_[uplink], echo.data(), echo.size(), MSG_DONTWAIT, from.sa(), from.len) !=
        static_cast<ssize_t>(echo.size()))
      c_.add(Counter::UdpSendErrors);
  }

  bool hand_to_control(ControlMessage::Kind kind, unsigned uplink, std::uint32_t index,
                       const std::uint8_t* pkt, std::size_t len, const io::Endpoint* from) noexcept {
    ControlMessage m;
    if (len > m.data.size()) {
      c_.add(Counter::DropMalformed);
      return false;
    }
    m.kind = kind;
    m.uplink = static_cast<std::uint8_t>(uplink);
    m.session_index = index;
    m.len = static_cast<std::uint16_t>(len);
    if (from != nullptr) m.from = *from;
    if (len > 0) std::memcpy(m.data.data(), pkt, len);
    ControlQueue* q = kind == ControlMessage::Kind::Packet && cfg_.handshakes_to_control != nullptr
                          ? cfg_.handshakes_to_control
                          : cfg_.to_control;
    if (!q->push(m)) {
      c_.add(Counter::DropQueueFull);
      return false;
    }
    if (kind == ControlMessage::Kind::Packet) c_.add(Counter::HandshakePackets);
    wake_control();
    return true;
  }

  void wake_control() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = write(cfg_.control_eventfd, &one, sizeof one);
  }

  // --- transmit --------------------------------------------------------------------

  // The Group an inner packet goes to: the client's one, or the server's client that
  // owns the destination address. Null: nobody.
  const GroupRoute* route_for(const std::uint8_t* inner, std::size_t n) const noexcept {
    const unsigned v = inner[0] >> 4;
    if (v == 6 && n >= 40) return link_local(inner) ? nullptr : snap_->route_ipv6(inner + 24);
    if (v != 4 || n < 20) return snap_->default_route;
    std::uint32_t dst;
    std::memcpy(&dst, inner + 16, 4);
    return snap_->route_ipv4(dst);
  }

  // IPv6 to a multicast or link-local address: the kernel's own chatter on the TUN
  // (multicast listener reports and the like), which no tunnel carries.
  static bool link_local(const std::uint8_t* inner) noexcept {
    const std::uint8_t* dst = inner + 24;
    return dst[0] == 0xff || (dst[0] == 0xfe && (dst[1] & 0xc0) == 0x80);
  }

  // Nowhere to send an inner packet: counted as kept on the link, or as no route.
  void no_route(const std::uint8_t* inner, std::size_t n, std::uint64_t count = 1) noexcept {
    const bool local = n >= 40 && (inner[0] >> 4) == 6 && link_local(inner);
    c_.add(local ? Counter::TunLocalIgnored : Counter::DropNoRoute, count);
  }

  // Whether the transmit side can go on: a TUN read (or a pending one) has the slots
  // for a packet and all its copies.
  bool tx_room() const noexcept {
    return free_.size() >= (cfg_.tun_vnet_hdr || generating_ ? kMaxUplinks : 1);
  }
  bool tx_work() const noexcept { return (tun_ready_ || pending_.active || generating_) && tx_room(); }

  // Benchmark traffic (triglav benchmark): synthetic packets for the routes the snapshot
  // lists, in turn, while slots are free. Each stream is its own UDP flow (so streams
  // spread over uplinks as real flows do) and belongs to one worker, s mod workers, as
  // an iperf3 stream to one core: --streams says how many send at once.
  unsigned owned_streams(const GroupRoute& r) const noexcept {
    const unsigned n = r.gen.streams, w = cfg_.workers, id = cfg_.id;
    return id < n ? (n - id + w - 1) / w : 0;
  }
  void generate() noexcept {
    const auto& routes = snap_->generate;
    const std::size_t room = cfg_.max_packet - kPayloadOffset - kTagLen;
    for (unsigned i = 0, idle = 0; i < kBatch && idle < routes.size() && free_.size() >= kMaxUplinks; ++i) {
      const GroupRoute& r = *routes[gen_next_++ % routes.size()];
      const unsigned owned = owned_streams(r);
      if (owned == 0) {
        ++idle;
        continue;
      }
      idle = 0;
      const unsigned stream = cfg_.id + cfg_.workers * (gen_stream_++ % owned);
      const std::uint16_t slot = free_.back();
      free_.pop_back();
      std::uint8_t* buf = tx_mem_.data() + std::size_t{slot} * cfg_.max_packet;
      const std::size_t n = write_generated(buf + kPayloadOffset, room, r.gen, stream);
      c_.add(Counter::BenchGenerated);
      send_data(r, slot, buf, n);
    }
  }

  void tx_batch() noexcept {
    if (cfg_.tun_vnet_hdr) return tx_batch_offload();
    const std::size_t room = cfg_.max_packet - kPayloadOffset - kTagLen;
    for (unsigned i = 0; i < kBatch; ++i) {
      if (free_.empty()) return;  // back-pressure: wait for send completions
      const std::uint16_t slot = free_.back();
      std::uint8_t* buf = tx_mem_.data() + std::size_t{slot} * cfg_.max_packet;
      const ssize_t n = read(cfg_.tun_fd, buf + kPayloadOffset, room);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        tun_ready_ = false;  // EAGAIN (or the device went away): wait for the next poll
        return;
      }
      c_.add(Counter::TunReadPackets);
      const GroupRoute* r = route_for(buf + kPayloadOffset, static_cast<std::size_t>(n));
      if (r == nullptr) {
        no_route(buf + kPayloadOffset, static_cast<std::size_t>(n));
        continue;
      }
      free_.pop_back();
      send_data(*r, slot, buf, static_cast<std::size_t>(n));
    }
  }

  // The same with TUN offloads: each read (into tun_buf_, behind its virtio_net_hdr) is
  // one packet or a super-packet, which is cut into segments here, each into its own
  // slot. When the slots run out mid-way (a small MSS, redundant copies on many
  // uplinks), the rest of the read stays pending in tun_buf_ and goes on as send
  // completions free slots; nothing is read meanwhile, and nothing is dropped.
  void tx_batch_offload() noexcept {
    const std::size_t room = cfg_.max_packet - kPayloadOffset - kTagLen;
    for (unsigned i = 0; i < kBatch; ++i) {
      if (!pending_.active) {
        if (!tun_ready_) return;
        const ssize_t n = read(cfg_.tun_fd, tun_buf_.data(), tun_buf_.size());
        if (n <= 0) {
          if (n < 0 && errno == EINTR) continue;
          tun_ready_ = false;  // EAGAIN (or the device went away): wait for the next poll
          return;
        }
        if (static_cast<std::size_t>(n) <= kVnetHdrLen) {
          c_.add(Counter::DropBadInner);
          continue;
        }
        Pending& p = pending_;
        p.len = static_cast<std::size_t>(n) - kVnetHdrLen;
        p.kind = classify_tun_packet(load_vnet_hdr(tun_buf_.data()), tun_buf_.data() + kVnetHdrLen, p.len, p.plan);
        if (p.kind == TunPacket::Malformed || p.kind == TunPacket::Unsupported ||
            (p.kind == TunPacket::Plain ? p.len > room : p.plan.hdr_len + p.plan.mss > room)) {
          c_.add(Counter::DropBadInner);
          continue;
        }
        p.segments = p.kind == TunPacket::Split ? p.plan.segments : 1;
        p.next = 0;
        p.active = true;
        c_.add(Counter::TunReadPackets, p.segments);
        if (p.kind == TunPacket::Split) c_.add(Counter::TunGsoReads);
      }
      if (!send_pending()) return;  // out of slots: go on after send completions
    }
  }

  // Sends what is left of the pending read; false when the slots ran out first.
  bool send_pending() noexcept {
    Pending& p = pending_;
    const std::uint8_t* pkt = tun_buf_.data() + kVnetHdrLen;
    const GroupRoute* r = route_for(pkt, p.len);  // looked up again: the snapshot may be newer
    if (r == nullptr) {
      no_route(pkt, p.len, p.segments - p.next);
      p.active = false;
      return true;
    }
    for (; p.next < p.segments; ++p.next) {
      if (free_.size() < kMaxUplinks) return false;  // room for a segment and all its copies
      const std::uint16_t slot = free_.back();
      free_.pop_back();
      std::uint8_t* buf = tx_mem_.data() + std::size_t{slot} * cfg_.max_packet;
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

  // Schedules one inner packet (in slot, at kPayloadOffset) onto the client's uplinks:
  // the flow keeps its uplink while usable; redundant sends a copy on each. All copies
  // carry the same sequence number and each is sealed under its own uplink's keys.
  // partial: the inner packet's checksum is partial (a segment cut here); completed in
  // place before the copy for a peer that did not agree to take it so.
  void send_data(const GroupRoute& r, std::uint16_t slot, std::uint8_t* buf, std::size_t n,
                 bool partial = false) noexcept {
    GroupWorkerState& gw = r.group->workers[cfg_.id];
    if (gw.views_version != r.version) {
      gw.sched.set_config(r.sched);
      gw.sched.update({r.views.data(), r.n_views}, now_);
      gw.views_version = r.version;
    }
    UplinkMask m = flows_.route(flow_hash(buf + kPayloadOffset, n), now_, gw.sched);
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
      std::uint8_t* b = tx_mem_.data() + std::size_t{cur} * cfg_.max_packet;
      if (partial && !s->peer_takes_partial) {  // this and any later copy: whole checksums
        complete_partial_checksum(b + kPayloadOffset, n);
        partial = false;
      }
      std::uint16_t next = 0;
      const bool more = m != 0 && !free_.empty();
      if (more) {  // keep the plaintext for the next copy before sealing this one
        next = free_.back();
        free_.pop_back();
        std::memcpy(tx_mem_.data() + std::size_t{next} * cfg_.max_packet + kHeaderLen, b + kHeaderLen,
                    kSeqLen + n);
      }
      if (!emit(s, to, PacketType::Data, cur, b, kSeqLen + n, partial ? kDataChecksumPartial : 0)) {
        if (!more) return;
        cur = next;
        continue;
      }
      auto& sent = s->tx[cfg_.id].bytes;
      sent.store(sent.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
      c_.add(Counter::TxPackets);
      c_.add(Counter::TxBytes, n);
      if (any) c_.add(Counter::TxRedundantCopies);
      any = true;
      if (!more) return;
      cur = next;
    }
    if (!any) {
      c_.add(Counter::DropNoRoute);
      free_.push_back(cur);  // the one slot still held (a failed emit freed the others)
    } else {
      free_.push_back(cur);  // an unused copy slot
    }
  }

  // A Ping's first 8 bytes come back in the Pong (the prober matches and times them),
  // followed by the Data bytes this session has received (the peer measures what its
  // path delivers).
  void send_pong(Session* s, const std::uint8_t* body, std::size_t n) noexcept {
    if (n != 8) {
      c_.add(Counter::DropMalformed);
      return;
    }
    if (free_.empty() || fds_[s->socket] < 0) {
      c_.add(Counter::DropQueueFull);
      return;
    }
    const std::uint16_t slot = free_.back();
    free_.pop_back();
    std::uint8_t* buf = tx_mem_.data() + std::size_t{slot} * cfg_.max_packet;
    std::memcpy(buf + kHeaderLen, body, 8);
    store_le64(buf + kHeaderLen + 8, s->rx_bytes.load(std::memory_order_relaxed));
    emit(s, s->peer_copy(), PacketType::Pong, slot, buf, kPongBody);
  }

  // Writes the header in front of buf[kHeaderLen, kHeaderLen + body), seals in place
  // with this worker's counter and adds the datagram to the open send batch for its
  // socket and peer (a new one when it does not fit); the slot is freed on completion.
  // False (slot freed, drop counted) when the session's keys are used up or the cipher
  // failed.
  bool emit(Session* s, const io::Endpoint& to, PacketType type, std::uint16_t slot, std::uint8_t* buf,
            std::size_t body, std::uint8_t aux = 0) noexcept {
    const std::size_t len = seal_transport(*s, cfg_.id, type, buf, body, aux);
    if (len == 0) {
      c_.add(keys_used_up(*s, cfg_.id) ? Counter::DropKeysUsedUp : Counter::DropSealFailed);
      free_.push_back(slot);
      return false;
    }
    const int fd = fds_[s->socket];
    // The kernel refuses to segment beyond the path MTU. Datagrams that fit a 1500-byte
    // path always batch; larger ones (a jumbo TUN MTU) until a send of them is refused,
    // and then go alone and may be fragmented as usual.
    const bool batchable =
        gso_ && (len <= (to.family() == AF_INET6 ? kMaxGsoSegment6 : kMaxGsoSegment4) || jumbo_gso_);
    for (std::size_t i = 0; i < open_.size(); ++i) {
      SendBatch& b = batches_[open_[i]];
      if (b.fd != fd || b.to.len != to.len || std::memcmp(&b.to.addr, &to.addr, to.len) != 0) continue;
      if (batchable && !b.closed && len <= b.seg && b.n < kMaxSegments && (b.n + 1) * b.seg <= kMaxGsoBytes) {
        b.iov[b.n] = {buf, len};
        b.slot[b.n++] = slot;
        b.closed = len < b.seg;
        return true;
      }
      submit(open_[i]);  // full, or the sizes differ: send it, keeping the order
      open_[i] = open_.back();
      open_.pop_back();
      break;
    }
    const std::uint16_t id = free_batches_.back();  // never empty: a batch holds >= 1 slot
    free_batches_.pop_back();
    SendBatch& b = batches_[id];
    b.fd = fd;
    b.to = to;
    b.seg = len;
    b.closed = false;
    b.iov[0] = {buf, len};
    b.slot[0] = slot;
    b.n = 1;
    if (batchable) open_.push_back(id);
    else submit(id);
    return true;
  }

  void submit(std::uint16_t id) noexcept {
    SendBatch& b = batches_[id];
    b.msg = {};
    b.msg.msg_name = &b.to.addr;
    b.msg.msg_namelen = b.to.len;
    b.msg.msg_iov = b.iov.data();
    b.msg.msg_iovlen = b.n;
    if (b.n > 1) {  // the kernel cuts the payload into b.seg-byte datagrams
      c_.add(Counter::TxGsoSends);
      b.msg.msg_control = b.control;
      b.msg.msg_controllen = sizeof b.control;
      cmsghdr* cm = CMSG_FIRSTHDR(&b.msg);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const auto seg = static_cast<std::uint16_t>(b.seg);
      std::memcpy(CMSG_DATA(cm), &seg, sizeof seg);
    }
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_sendmsg(sqe, b.fd, &b.msg, 0);
    io_uring_sqe_set_data64(sqe, ud(kOpSend, id));
  }

  void resend_one_by_one(std::uint16_t id) noexcept {
    const SendBatch old = batches_[id];
    batches_[id].n = 0;
    free_batches_.push_back(id);
    for (unsigned i = 0; i < old.n; ++i) {
      const std::uint16_t nid = free_batches_.back();
      free_batches_.pop_back();
      SendBatch& b = batches_[nid];
      b.fd = old.fd;
      b.to = old.to;
      b.seg = old.iov[i].iov_len;
      b.iov[0] = old.iov[i];
      b.slot[0] = old.slot[i];
      b.n = 1;
      submit(nid);
    }
  }

  void flush_sends() noexcept {
    for (std::uint16_t id : open_) submit(id);
    open_.clear();
  }

  const WorkerConfig& cfg_;
  Counters& c_;
  int stop_fd_;
  int cmd_fd_;
  CommandQueue& commands_;
  std::array<int, kMaxUplinks> fds_{};  // uplink id -> socket (-1: none)
  io::Ring ring_;
  bool gro_ = false;
  io::BufRing rx_;
  std::vector<std::uint16_t> rx_refs_;  // TUN writes still pointing into each receive buffer
  msghdr recv_msg_{};
  std::vector<std::uint8_t> tx_mem_;
  std::vector<std::uint8_t> tun_buf_;  // TUN offloads: one read, before it is cut up
  struct Pending {  // the read in tun_buf_ while its segments go out
    bool active = false;
    TunPacket kind = TunPacket::Plain;
    GsoPlan plan;
    std::size_t len = 0;  // after the virtio_net_hdr
    unsigned segments = 0, next = 0;
  };
  Pending pending_;
  // Userspace GRO: the open run of the buffer being handled, and the gather lists of
  // super-packet writes in flight (each until its completion).
  struct GroWrite {
    std::array<iovec, kMaxGroSegments> iov;
    std::uint16_t bid = 0;
  };
  GroRun run_;
  std::uint16_t run_slot_ = 0;
  std::vector<GroWrite> gro_writes_;
  std::vector<std::uint16_t> free_gro_;
  unsigned buf_writes_ = 0;  // TUN writes submitted for the buffer being handled
  std::vector<SendBatch> batches_;
  std::vector<std::uint16_t> free_batches_;
  std::vector<std::uint16_t> open_;  // batches still taking datagrams this iteration
  std::vector<std::uint16_t> free_;
  std::vector<bool> rearm_;
  FlowTable flows_;
  const Snapshot* snap_ = nullptr;
  std::int64_t now_ = 0;
  unsigned tun_writes_ = 0;
  unsigned recycled_ = 0;
  bool tun_ready_ = false;
  bool running_ = true;
  bool gso_ = false;
  bool jumbo_gso_ = true;  // segmented sends of datagrams above 1452 bytes (until refused)
  bool generating_ = false;  // the snapshot lists benchmark routes
  UplinkMask unreleased_ = 0;  // uplinks let go of, not yet reported (the queue was full)
  unsigned gen_next_ = 0, gen_stream_ = 0;
  static constexpr unsigned kBadMacPerSecond = 10;
  static constexpr unsigned kProbesPerSecond = 200;
  std::int64_t probe_window_ns_ = 0;
  unsigned probes_seen_ = 0;
  std::optional<HandshakeGuard> guard_;  // server only
  std::int64_t bad_mac_window_ns_ = 0;
  unsigned bad_mac_passed_ = 0;
};

Worker::Worker(WorkerConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.id >= kMaxWorkers) throw std::runtime_error("too many workers");
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  cmd_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0 || cmd_fd_ < 0) throw std::runtime_error("eventfd: " + std::string(std::strerror(errno)));
}

Worker::~Worker() {
  stop();
  close(stop_fd_);
  close(cmd_fd_);
}

void Worker::guard_handshakes(const HandshakeMacKeys& keys, GuardLoad* load, const io::RelaySources* relay) noexcept {
  cfg_.handshake_keys = keys;
  cfg_.guard_load = load;
  cfg_.relay_sources = relay;
}

bool Worker::command(const UplinkCommand& c) noexcept {
  if (!commands_.push(c)) return false;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = write(cmd_fd_, &one, sizeof one);
  return true;
}

void Worker::wake() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = write(cmd_fd_, &one, sizeof one);
}

void Worker::start() {
  std::promise<std::string> started;
  auto result = started.get_future();
  thread_ = std::thread([this, p = std::move(started)]() mutable { run(std::move(p)); });
  const std::string err = result.get();
  if (!err.empty()) {
    thread_.join();
    throw std::runtime_error(err);
  }
}

void Worker::stop() noexcept {
  if (!thread_.joinable()) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = write(stop_fd_, &one, sizeof one);
  thread_.join();
}

void Worker::run(std::promise<std::string> started) noexcept {
  std::unique_ptr<Loop> loop;
  try {
    loop = std::make_unique<Loop>(cfg_, counters_, stop_fd_, cmd_fd_, commands_);
  } catch (const std::exception& e) {
    started.set_value(std::string("worker ") + std::to_string(cfg_.id) + ": " + e.what());
    return;
  }
  if (cfg_.cpu >= 0) {  // best effort: a CPU set changed under us only costs locality
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cfg_.cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  started.set_value({});
  loop->run();
}

}  // namespace triglav::dp
