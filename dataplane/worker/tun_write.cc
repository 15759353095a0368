// Inner packets into the TUN, the last receive stage. Each write points into the receive
// buffer the packet arrived in (no copy); the buffer goes back to the BufRing when the
// last write into it completes.
//
// With TUN offloads (virtio_net_hdr), consecutive segments of one TCP flow join a run
// that goes out as one super-packet (userspace GRO, dataplane/offload.h) when the next
// packet does not continue it, or the buffer ends; anything else is written alone, in
// order. A partial packet (its checksum left to the kernel by the sender,
// kDataChecksumPartial) goes behind a NEEDS_CSUM header, or is completed here for a TUN
// without offloads.
#include <cstring>

#include "dataplane/worker/loop.h"

namespace triglav::dp {

// An inner packet in receive buffer bid, with at least kPayloadOffset spent bytes in
// front of it (room for a virtio_net_hdr).
void Worker::Loop::deliver(std::uint16_t bid, std::uint8_t* inner, std::size_t len, bool partial) noexcept {
  if (!cfg_.tun_vnet_hdr) {
    std::uint8_t* p = frame_alone(inner, len, partial);
    return write_tun(bid, p, len);
  }
  GroRun& run = tw_.run;
  if (run.n > 0 && gro_append(run, inner, len, partial)) {
    tw_.gro[tw_.run_slot].iov[run.n - 1] = {inner + run.hdr_len, len - run.hdr_len};
    return;
  }
  flush_run(bid);
  if (!tw_.free_gro.empty() && gro_start(run, inner, len, partial)) {
    tw_.run_slot = tw_.free_gro.back();
    tw_.free_gro.pop_back();
    return;
  }
  write_alone(bid, inner, len, partial);
}

// One packet made ready to be written on its own: with TUN offloads behind its own
// virtio_net_hdr, written over the spent bytes in front of it (all zero, or NEEDS_CSUM
// for a partial TCP/UDP checksum); without, its partial checksum completed. Returns where
// the write starts; len becomes its length.
std::uint8_t* Worker::Loop::frame_alone(std::uint8_t* inner, std::size_t& len, bool partial) noexcept {
  if (!cfg_.tun_vnet_hdr) {
    if (partial) complete_partial_checksum(inner, len);
    return inner;
  }
  VnetHdr h;
  if (partial && partial_checksum_hdr(inner, len, h)) store_vnet_hdr(inner - kVnetHdrLen, h);
  else std::memset(inner - kVnetHdrLen, 0, kVnetHdrLen);
  len += kVnetHdrLen;
  return inner - kVnetHdrLen;
}

void Worker::Loop::write_alone(std::uint16_t bid, std::uint8_t* inner, std::size_t len, bool partial) noexcept {
  std::uint8_t* p = frame_alone(inner, len, partial);
  write_tun(bid, p, len);
}

void Worker::Loop::write_tun(std::uint16_t bid, std::uint8_t* p, std::size_t len) noexcept {
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_write(sqe, cfg_.tun_fd, p, static_cast<unsigned>(len), 0);
  io_uring_sqe_set_data64(sqe, ud(kOpTunWrite, bid));
  ++tw_.in_flight;
  ++tw_.buf_writes;
}

// Writes the open run: alone when it has one segment, else as a super-packet behind its
// virtio_net_hdr (gathered from the buffer: the first segment whole, then the others'
// payloads).
void Worker::Loop::flush_run(std::uint16_t bid) noexcept {
  GroRun& run = tw_.run;
  if (run.n == 0) return;
  std::uint8_t* first = run.first;
  const std::size_t first_len = run.first_len;
  if (run.n == 1) {
    const bool partial = run.first_partial;
    tw_.free_gro.push_back(tw_.run_slot);
    run = GroRun{};
    return write_alone(bid, first, first_len, partial);
  }
  store_vnet_hdr(first - kVnetHdrLen, gro_finish(run));
  TunWrite::GroWrite& w = tw_.gro[tw_.run_slot];
  w.bid = bid;
  w.iov[0] = {first - kVnetHdrLen, first_len + kVnetHdrLen};  // iov[1..n-1]: the others' payloads
  io_uring_sqe* sqe = ring_.sqe();
  io_uring_prep_writev(sqe, cfg_.tun_fd, w.iov.data(), run.n, 0);
  io_uring_sqe_set_data64(sqe, ud(kOpTunGroWrite, tw_.run_slot));
  ++tw_.in_flight;
  ++tw_.buf_writes;
  c_.add(Counter::TunGroWrites);
  run = GroRun{};
}

// A TUN write into receive buffer bid completed.
void Worker::Loop::tun_written(std::uint16_t bid, int res) noexcept {
  --tw_.in_flight;
  if (res < 0) c_.add(Counter::TunWriteErrors);
  if (--rx_.refs[bid] == 0) {
    rx_.buffers.recycle(bid);
    ++rx_.recycled;
  }
}

// What the reorder buffer let go, in order, each from its slot (behind its own
// virtio_net_hdr in the slot's headroom); the slot is free again when the write completes.
void Worker::Loop::write_held() noexcept {
  tw_.reorder->drain([this](const Reorder::Ready& r) {
    std::size_t len = r.len;
    std::uint8_t* p = frame_alone(r.data, len, r.partial);
    io_uring_sqe* sqe = ring_.sqe();
    io_uring_prep_write(sqe, cfg_.tun_fd, p, static_cast<unsigned>(len), 0);
    io_uring_sqe_set_data64(sqe, ud(kOpTunHeldWrite, r.slot));
    ++tw_.in_flight;
  });
}

// Gaps whose wait ran out: given up, and what they held written.
void Worker::Loop::expire_held() noexcept {
  if (!tw_.reorder || tw_.reorder->held() == 0 || now_ < tw_.reorder->next_deadline()) return;
  tw_.reorder->expire(now_);
  write_held();
}

// The reorder buffer's statistics into the counters (what changed since last time).
void Worker::Loop::count_reorder() noexcept {
  if (!tw_.reorder) return;
  const ReorderStats& s = tw_.reorder->stats();
  ReorderStats& c = tw_.counted;
  count_since(Counter::RxReordered, s.held, c.held);
  count_since(Counter::RxReorderLate, s.late, c.late);
  count_since(Counter::RxReorderLostGaps, s.lost_gaps, c.lost_gaps);
  count_since(Counter::RxReorderTimeoutGaps, s.timeout_gaps, c.timeout_gaps);
  count_since(Counter::RxReorderOverflows, s.overflows, c.overflows);
  count_since(Counter::RxReorderUntracked, s.untracked, c.untracked);
  count_since(Counter::RxReorderRepairAsked, s.repair_asked, c.repair_asked);
  count_since(Counter::RxReorderRepaired, s.repaired, c.repaired);
  const Counter wait[ReorderStats::kResidenceBuckets] = {
      Counter::RxReorderWait1ms,  Counter::RxReorderWait2ms,  Counter::RxReorderWait4ms,
      Counter::RxReorderWait8ms,  Counter::RxReorderWait16ms, Counter::RxReorderWait32ms,
      Counter::RxReorderWait64ms, Counter::RxReorderWait128ms, Counter::RxReorderWaitLong};
  for (int i = 0; i < ReorderStats::kResidenceBuckets; ++i) count_since(wait[i], s.residence[i], c.residence[i]);
}

// The reassembly table's statistics into the counters (what changed since the last call).
void Worker::Loop::count_reassembly() noexcept {
  const ReassemblyStats& s = tw_.frags->stats();
  ReassemblyStats& c = tw_.frags_counted;
  count_since(Counter::RxFragments, s.pieces, c.pieces);
  count_since(Counter::RxReassembled, s.packets, c.packets);
  count_since(Counter::DropBadFragment, s.bad, c.bad);
  count_since(Counter::DropFragmentTimeout, s.timeouts, c.timeouts);
  count_since(Counter::DropFragmentOverflow, s.overflows, c.overflows);
}

// Adds to counter k what a statistic grew by since `before`, which then catches up.
void Worker::Loop::count_since(Counter k, std::uint64_t now, std::uint64_t& before) noexcept {
  if (now != before) c_.add(k, now - before);
  before = now;
}

// A receive buffer whose datagrams are all handled: back to the ring now, or once its
// `writes` TUN writes completed.
void Worker::Loop::release_buffer(std::uint16_t bid, unsigned writes) noexcept {
  if (writes == 0) {
    rx_.buffers.recycle(bid);
    ++rx_.recycled;
  } else {
    rx_.refs[bid] = static_cast<std::uint16_t>(writes);
  }
}

}  // namespace triglav::dp
