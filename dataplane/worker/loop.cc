// The loop: one io_uring for everything a worker waits on (receives on each uplink, the
// TUN becoming readable, TUN writes, sends, the stop and command eventfds). Each turn:
//   1. transmit while there is work and room (tx.cc), else sleep on the ring;
//   2. load the snapshot, then handle every completion (receives: rx.cc; TUN writes:
//      tun_write.cc; sends: udp_send.h; commands);
//   3. transmit again, re-arm receives that ended, submit the open send batches;
//   4. pass a quiescent point: nothing of the snapshot is held beyond it.
#include "dataplane/worker/loop.h"

#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "crypto/aead.h"
#include "io/clock.h"
#include "io/system.h"

namespace triglav::dp {

Worker::Loop::Loop(const WorkerConfig& cfg, Counters& counters, int stop_fd, int cmd_fd, CommandQueue& commands)
    : cfg_(cfg),
      c_(counters),
      stop_fd_(stop_fd),
      cmd_fd_(cmd_fd),
      commands_(commands),
      ring_(kRingEntries),
      rx_(ring_, io::udp_gro_supported()),
      sender_(kTxSlots, io::udp_gso_supported(), *this, counters) {
  fds_.fill(-1);
  for (std::size_t i = 0; i < cfg.uplink_fds.size() && i < kMaxUplinks; ++i) fds_[i] = cfg.uplink_fds[i];
  for (int fd : fds_) enable_gro(fd);
  if (cfg.tun_vnet_hdr) {
    tw_.gro.resize(kGroWrites);
    for (unsigned i = 0; i < kGroWrites; ++i) tw_.free_gro.push_back(static_cast<std::uint16_t>(i));
    tx_.tun_buf.resize(kVnetHdrLen + kTunReadMax);
  }
  tx_.mem.resize(std::size_t{kTxSlots} * cfg.max_packet);
  for (unsigned i = 0; i < kTxSlots; ++i) tx_.free.push_back(static_cast<std::uint16_t>(kTxSlots - 1 - i));
  if (cfg.handshake_keys) {
    GuardConfig g;
    g.load = cfg.guard_load;
    g.relay = cfg.relay_sources;
    gate_.emplace(*cfg.handshake_keys, g);
  }
}

void Worker::Loop::run() noexcept {
  for (unsigned u = 0; u < kMaxUplinks; ++u)
    if (fds_[u] >= 0) arm_recv(u);
  arm_poll(cfg_.tun_fd, kOpTunPoll);
  arm_poll(stop_fd_, kOpStop);
  arm_poll(cmd_fd_, kOpCommand);
  Qsbr& q = *cfg_.qsbr;
  q.online(cfg_.id);
  while (running_) {
    if (tx_work()) {
      io_uring_submit(ring_.get());
    } else {
      crypto::forget_thread_keys();  // idle: no session key waits in OpenSSL's context
      q.offline(cfg_.id);
      if (tw_.reorder && tw_.reorder->held() > 0) {  // wake for the first gap's deadline
        // From now, not from the start of this turn (now_), which may be a while ago.
        const std::int64_t wait =
            std::clamp<std::int64_t>(tw_.reorder->next_deadline() - io::monotonic_ns(), 1'000'000, 999'999'999);
        __kernel_timespec ts{0, static_cast<long long>(wait)};
        io_uring_cqe* cqe = nullptr;
        io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &ts, nullptr);
      } else {
        io_uring_submit_and_wait(ring_.get(), 1);
      }
      q.online(cfg_.id);
    }
    now_ = io::monotonic_ns();
    snap_ = cfg_.snapshots->load();
    tx_.generating = false;
    for (const GroupRoute* r : snap_->generate) tx_.generating |= owned_streams(*r) > 0;
    rx_.recycled = 0;
    drain_completions();
    expire_held();
    if (tx_work()) {
      if (tx_.tun_ready || tx_.pending.active) tx_batch();
      if (tx_.generating) generate();
    }
    rx_.buffers.flush();
    rearm_receives();
    sender_.flush();
    if (unreleased_ != 0) report_releases();
    count_reorder();
    if (tw_.frags) {  // packets whose fragments stopped coming: given up, counted
      tw_.frags->expire(now_);
      count_reassembly();
    }
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
void Worker::Loop::cancel_all() noexcept {
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

void Worker::Loop::arm_recv(unsigned uplink) noexcept {
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_recvmsg_multishot(s, fds_[uplink], &rx_.msg, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = rx_.buffers.group();
  io_uring_sqe_set_data64(s, ud(kOpRecv, uplink));
}

void Worker::Loop::arm_poll(int fd, Op op) noexcept {
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_poll_multishot(s, fd, POLLIN);
  io_uring_sqe_set_data64(s, ud(op, 0));
}

// A receive that ended (no buffer was free) starts again once buffers came back, or
// when no TUN write holds any.
void Worker::Loop::rearm_receives() noexcept {
  for (unsigned u = 0; u < rx_.rearm.size(); ++u) {
    if (rx_.rearm[u] && fds_[u] < 0) rx_.rearm[u] = false;  // the uplink went away
    if (rx_.rearm[u] && (rx_.recycled > 0 || tw_.in_flight == 0)) {
      rx_.rearm[u] = false;
      arm_recv(u);
    }
  }
}

void Worker::Loop::drain_completions() noexcept {
  io_uring_cqe* cqes[kBatch * 2];
  for (;;) {
    const unsigned n = io_uring_peek_batch_cqe(ring_.get(), cqes, kBatch * 2);
    if (n == 0) return;
    for (unsigned i = 0; i < n; ++i) complete(cqes[i]);
    io_uring_cq_advance(ring_.get(), n);
    if (n < kBatch * 2) return;
  }
}

void Worker::Loop::complete(const io_uring_cqe* cqe) noexcept {
  const std::uint64_t data = io_uring_cqe_get_data64(cqe);
  const auto op = static_cast<Op>(data >> kOpShift);
  const std::uint64_t idx = data & ((std::uint64_t{1} << kOpShift) - 1);
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  switch (op) {
    case kOpRecv:
      on_recv(static_cast<unsigned>(idx), cqe);
      if (!more) rx_.rearm[idx] = true;
      break;
    case kOpTunPoll:
      tx_.tun_ready = true;
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
      const auto slot = static_cast<std::uint16_t>(idx);
      tw_.free_gro.push_back(slot);
      tun_written(tw_.gro[slot].bid, cqe->res);
      break;
    }
    case kOpTunWrite:
      tun_written(static_cast<std::uint16_t>(idx), cqe->res);
      break;
    case kOpTunHeldWrite:
      --tw_.in_flight;
      if (cqe->res < 0) c_.add(Counter::TunWriteErrors);
      tw_.reorder->free_slot(static_cast<std::uint32_t>(idx));
      break;
    case kOpTunFragWrite:
      --tw_.in_flight;
      if (cqe->res < 0) c_.add(Counter::TunWriteErrors);
      tw_.frags->release(static_cast<std::uint32_t>(idx));
      break;
    case kOpSend:
      sender_.completed(static_cast<std::uint16_t>(idx), cqe->res, tx_.free);
      break;
  }
}

void Worker::Loop::sendmsg(std::uint16_t batch, int fd, const msghdr* msg) noexcept {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_sendmsg(sqe, fd, msg, 0);
  io_uring_sqe_set_data64(sqe, ud(kOpSend, batch));
}

// Uplinks come and go at run time (auto-discovery). A removed uplink's receive is
// cancelled and the control thread told, so it closes the socket only once this ring
// no longer submits anything on it.
void Worker::Loop::run_commands() noexcept {
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
void Worker::Loop::report_releases() noexcept {
  for (UplinkMask m = unreleased_; m != 0; m &= m - 1) {
    const unsigned id = static_cast<unsigned>(std::countr_zero(m));
    if (!hand_to_control(ControlMessage::Kind::UplinkReleased, id, 0, nullptr, 0, nullptr)) return;
    unreleased_ &= ~(UplinkMask{1} << id);
  }
}

// Asks the kernel to hand over coalesced datagrams (best effort: without it they come
// one by one, which the loop handles the same way).
void Worker::Loop::enable_gro(int fd) noexcept {
  if (!rx_.gro || fd < 0) return;
  const int one = 1;
  setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
}

// Handshake and Error datagrams go to their own queue (when there is one), so that a
// flood of them never delays what sessions say.
bool Worker::Loop::hand_to_control(ControlMessage::Kind kind, unsigned uplink, std::uint32_t index,
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

void Worker::Loop::wake_control() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = write(cfg_.control_eventfd, &one, sizeof one);
}

}  // namespace triglav::dp
