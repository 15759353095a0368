// One io_uring per thread, plus a provided-buffer ring for multishot receives.
//
// A Ring is created, used and destroyed on one thread (IORING_SETUP_SINGLE_ISSUER);
// required kernel features are probed at construction and a missing one is named in
// the exception. Submission never blocks on a full SQ: sqe() flushes first.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace triglav::io {

class Ring {
 public:
  // Throws std::runtime_error naming what the kernel lacks.
  explicit Ring(unsigned entries);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  io_uring* get() noexcept { return &ring_; }

  // A zeroed SQE; submits pending ones first if the SQ is full. Never null.
  io_uring_sqe* sqe() noexcept;

 private:
  io_uring ring_{};
};

// Provided buffers (buffer group) registered with a Ring: fixed-size slots the kernel
// fills on receive. The owner returns a slot with recycle() once it is done with it and
// publishes returned slots in bulk with flush().
class BufRing {
 public:
  // entries must be a power of two. Throws std::runtime_error on failure.
  BufRing(Ring& ring, std::uint16_t group, unsigned entries, std::size_t buf_size);
  ~BufRing();
  BufRing(const BufRing&) = delete;
  BufRing& operator=(const BufRing&) = delete;

  std::uint16_t group() const noexcept { return group_; }
  std::size_t buf_size() const noexcept { return buf_size_; }
  std::uint8_t* buf(std::uint16_t id) noexcept { return mem_ + std::size_t{id} * buf_size_; }

  void recycle(std::uint16_t id) noexcept;
  void flush() noexcept;

 private:
  Ring& ring_;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::uint8_t* mem_ = nullptr;
  std::size_t mem_bytes_ = 0;
  std::uint16_t group_;
  unsigned entries_;
  std::size_t buf_size_;
  int pending_ = 0;
};

}  // namespace triglav::io
