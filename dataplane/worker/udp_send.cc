#include "dataplane/worker/udp_send.h"

#include <netinet/udp.h>

#include <cerrno>
#include <cstring>

namespace triglav::dp {

UdpSender::UdpSender(unsigned batches, bool gso, SendSink& sink, Counters& counters)
    : batches_(batches), sink_(sink), c_(counters), gso_(gso) {
  free_batches_.reserve(batches);
  for (unsigned i = 0; i < batches; ++i) free_batches_.push_back(static_cast<std::uint16_t>(batches - 1 - i));
  open_.reserve(batches);
}

void UdpSender::add(int fd, const io::Endpoint& to, std::uint8_t* buf, std::size_t len, std::uint16_t slot) noexcept {
  // The kernel refuses to segment beyond the path MTU. Datagrams that fit a 1500-byte
  // path always batch; larger ones (a jumbo TUN MTU) until a send of them is refused,
  // and then go alone and may be fragmented as usual.
  const bool batchable = gso_ && (len <= small_segment(to) || jumbo_gso_);
  for (std::size_t i = 0; i < open_.size(); ++i) {
    Batch& b = batches_[open_[i]];
    if (b.fd != fd || b.to.len != to.len || std::memcmp(&b.to.addr, &to.addr, to.len) != 0) continue;
    if (batchable && !b.closed && len <= b.seg && b.n < kMaxSegments && (b.n + 1) * b.seg <= kMaxGsoBytes) {
      b.iov[b.n] = {buf, len};
      b.slot[b.n++] = slot;
      b.closed = len < b.seg;
      return;
    }
    submit(open_[i]);  // full, or the sizes differ: send it, keeping the order
    open_[i] = open_.back();
    open_.pop_back();
    break;
  }
  const std::uint16_t id = start(fd, to, buf, len, slot);
  if (batchable) open_.push_back(id);
  else submit(id);
}

std::uint16_t UdpSender::start(int fd, const io::Endpoint& to, std::uint8_t* buf, std::size_t len,
                               std::uint16_t slot) noexcept {
  const std::uint16_t id = free_batches_.back();  // never empty: a batch holds >= 1 slot
  free_batches_.pop_back();
  Batch& b = batches_[id];
  b.fd = fd;
  b.to = to;
  b.seg = len;
  b.closed = false;
  b.iov[0] = {buf, len};
  b.slot[0] = slot;
  b.n = 1;
  return id;
}

void UdpSender::flush() noexcept {
  for (std::uint16_t id : open_) submit(id);
  open_.clear();
}

void UdpSender::submit(std::uint16_t id) noexcept {
  Batch& b = batches_[id];
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
  sink_.sendmsg(id, b.fd, &b.msg);
}

void UdpSender::completed(std::uint16_t id, int res, std::vector<std::uint16_t>& free_slots) noexcept {
  Batch& b = batches_[id];
  if (res < 0 && b.n > 1 && (res == -EIO || res == -EINVAL || res == -EOPNOTSUPP || res == -EMSGSIZE)) {
    // Segmentation refused: first for datagrams above a 1500-byte path's size (a jumbo
    // TUN MTU over an uplink with a smaller MTU), then, if even those fail, for all.
    if (b.seg > small_segment(b.to) && jumbo_gso_) jumbo_gso_ = false;
    else gso_ = false;
    resend_one_by_one(id);
    return;
  }
  if (res < 0) c_.add(Counter::UdpSendErrors, b.n);
  for (unsigned i = 0; i < b.n; ++i) free_slots.push_back(b.slot[i]);
  b.n = 0;
  free_batches_.push_back(id);
}

void UdpSender::resend_one_by_one(std::uint16_t id) noexcept {
  const Batch old = batches_[id];
  batches_[id].n = 0;
  free_batches_.push_back(id);
  for (unsigned i = 0; i < old.n; ++i)
    submit(start(old.fd, old.to, static_cast<std::uint8_t*>(old.iov[i].iov_base), old.iov[i].iov_len, old.slot[i]));
}

}  // namespace triglav::dp
