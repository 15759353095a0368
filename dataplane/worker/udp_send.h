// The last transmit stage: sealed datagrams leave through sendmsg, gathered with UDP GSO.
//
// Consecutive datagrams of one size to one peer through one socket join one batch: a
// single sendmsg with UDP_SEGMENT whose iovecs are the datagrams' slots (up to 64 of
// them, 65,000 bytes in all); a shorter datagram may end a batch, a longer one or
// another peer or socket starts a new one. Batches stay open until flush() (the end of
// the worker's loop iteration), so the order of datagrams to each peer is kept.
//
// The kernel may refuse segmentation (a device without it, a path MTU below the
// datagrams): such a batch is sent again one datagram per sendmsg, and from then on no
// segmented send of datagrams above a 1500-byte path's size, or none at all if even
// those were refused.
//
// The sender owns no packet memory: each datagram names the slot that holds it, and
// completed() gives the slots back once the kernel is done with them.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dataplane/counters.h"
#include "io/endpoint.h"

namespace triglav::dp {

// Where a prepared sendmsg goes: the worker puts it on its io_uring with the batch id as
// the user data and calls UdpSender::completed(id, res) with the result. msg stays valid
// until then.
class SendSink {
 public:
  virtual void sendmsg(std::uint16_t batch, int fd, const msghdr* msg) noexcept = 0;

 protected:
  ~SendSink() = default;
};

class UdpSender {
 public:
  static constexpr unsigned kMaxSegments = 64;        // datagrams per GSO send (the kernel's limit)
  static constexpr std::size_t kMaxGsoBytes = 65000;  // and their total, within one IP datagram
  static constexpr std::size_t kMaxGsoSegment4 = 1500 - 28;  // a datagram that fits a 1500-byte path
  static constexpr std::size_t kMaxGsoSegment6 = 1500 - 48;

  // batches: at least the number of slots whose datagrams may be in flight at once (each
  // batch holds at least one). gso: whether the kernel supports UDP_SEGMENT at all.
  UdpSender(unsigned batches, bool gso, SendSink& sink, Counters& counters);

  // Sends buf[0, len) (held in `slot`) to `to` through fd: added to an open batch, or
  // starting one. The slot comes back through completed().
  void add(int fd, const io::Endpoint& to, std::uint8_t* buf, std::size_t len, std::uint16_t slot) noexcept;
  // Submits every batch still open.
  void flush() noexcept;
  // The sendmsg of `batch` finished with res (bytes or -errno). Its slots are appended to
  // `free_slots`, unless the batch was refused segmentation: then its datagrams are
  // submitted again one by one, and their slots come back with those completions.
  // Counted: udp_send_errors per datagram of a failed send.
  void completed(std::uint16_t batch, int res, std::vector<std::uint16_t>& free_slots) noexcept;

  bool gso() const noexcept { return gso_; }
  bool jumbo_gso() const noexcept { return jumbo_gso_; }

 private:
  struct Batch {
    msghdr msg{};
    std::array<iovec, kMaxSegments> iov{};
    std::array<std::uint16_t, kMaxSegments> slot{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))]{};
    io::Endpoint to;
    int fd = -1;
    unsigned n = 0;
    std::size_t seg = 0;   // every datagram's size but the last one's
    bool closed = false;   // a shorter datagram ended it
  };

  std::uint16_t start(int fd, const io::Endpoint& to, std::uint8_t* buf, std::size_t len,
                      std::uint16_t slot) noexcept;
  void submit(std::uint16_t id) noexcept;
  void resend_one_by_one(std::uint16_t id) noexcept;
  static std::size_t small_segment(const io::Endpoint& to) noexcept {
    return to.family() == AF_INET6 ? kMaxGsoSegment6 : kMaxGsoSegment4;
  }

  std::vector<Batch> batches_;
  std::vector<std::uint16_t> free_batches_;
  std::vector<std::uint16_t> open_;  // batches still taking datagrams
  SendSink& sink_;
  Counters& c_;
  bool gso_;
  bool jumbo_gso_ = true;  // segmented sends of datagrams above a 1500-byte path's (until refused)
};

}  // namespace triglav::dp
