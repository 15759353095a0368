#include "io/ring.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace triglav::io {
namespace {

void require_opcodes(io_uring* ring) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) throw std::runtime_error("io_uring: the kernel cannot report its opcodes");
  struct {
    int op;
    const char* name;
  } const needed[] = {
      {IORING_OP_RECVMSG, "RECVMSG"}, {IORING_OP_SENDMSG, "SENDMSG"},
      {IORING_OP_POLL_ADD, "POLL_ADD"}, {IORING_OP_WRITE, "WRITE"},
      {IORING_OP_READ, "READ"},
  };
  std::string missing;
  for (const auto& n : needed) {
    if (!io_uring_opcode_supported(probe, n.op)) missing += std::string(" ") + n.name;
  }
  io_uring_free_probe(probe);
  if (!missing.empty()) throw std::runtime_error("io_uring: the kernel lacks opcodes:" + missing);
}

}  // namespace

Ring::Ring(unsigned entries) {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring_, &p);
  if (rc == -EINVAL) {  // kernels before 6.0 lack SINGLE_ISSUER: fall back, it is a hint
    p = {};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &ring_, &p);
  }
  if (rc < 0) {
    std::string why = std::strerror(-rc);
    if (rc == -EPERM || rc == -ENOSYS)
      why += " (io_uring is disabled: check sysctl kernel.io_uring_disabled)";
    throw std::runtime_error("io_uring setup failed: " + why);
  }
  if (!(p.features & IORING_FEAT_NODROP)) {
    io_uring_queue_exit(&ring_);
    throw std::runtime_error("io_uring: the kernel lacks IORING_FEAT_NODROP (needs Linux 5.5+)");
  }
  try {
    require_opcodes(&ring_);
  } catch (...) {
    io_uring_queue_exit(&ring_);
    throw;
  }
}

Ring::~Ring() { io_uring_queue_exit(&ring_); }

io_uring_sqe* Ring::sqe() noexcept {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (s == nullptr) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

BufRing::BufRing(Ring& ring, std::uint16_t group, unsigned entries, std::size_t buf_size)
    : ring_(ring), group_(group), entries_(entries), buf_size_(buf_size) {
  if (entries == 0 || (entries & (entries - 1)) != 0 || entries > 32768)
    throw std::runtime_error("buffer ring size must be a power of two up to 32768");
  // liburing 2.3 has no io_uring_setup_buf_ring: map and register the ring ourselves.
  ring_bytes_ = entries * sizeof(io_uring_buf);
  void* r = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (r == MAP_FAILED) throw std::runtime_error("buffer ring: mmap failed");
  br_ = static_cast<io_uring_buf_ring*>(r);
  mem_bytes_ = entries * buf_size;
  void* m = mmap(nullptr, mem_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (m == MAP_FAILED) {
    munmap(br_, ring_bytes_);
    throw std::runtime_error("buffer ring: mmap of buffers failed");
  }
  mem_ = static_cast<std::uint8_t*>(m);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
  reg.ring_entries = entries;
  reg.bgid = group;
  const int rc = io_uring_register_buf_ring(ring.get(), &reg, 0);
  if (rc < 0) {
    munmap(mem_, mem_bytes_);
    munmap(br_, ring_bytes_);
    throw std::runtime_error(std::string("io_uring: provided buffer rings unsupported (needs "
                                         "Linux 5.19+): ") + std::strerror(-rc));
  }
  const int mask = io_uring_buf_ring_mask(entries);
  for (unsigned i = 0; i < entries; ++i)
    io_uring_buf_ring_add(br_, buf(static_cast<std::uint16_t>(i)), static_cast<unsigned>(buf_size),
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  io_uring_buf_ring_advance(br_, static_cast<int>(entries));
}

BufRing::~BufRing() {
  io_uring_unregister_buf_ring(ring_.get(), group_);
  munmap(mem_, mem_bytes_);
  munmap(br_, ring_bytes_);
}

void BufRing::recycle(std::uint16_t id) noexcept {
  io_uring_buf_ring_add(br_, buf(id), static_cast<unsigned>(buf_size_), id,
                        io_uring_buf_ring_mask(entries_), pending_++);
}

void BufRing::flush() noexcept {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(br_, pending_);
  pending_ = 0;
}

}  // namespace triglav::io
