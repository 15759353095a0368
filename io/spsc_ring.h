// Bounded single-producer/single-consumer ring of fixed-size items, lock-free.
// One thread calls push(), one other thread calls pop(); neither blocks.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>

namespace triglav::io {

template <typename T, std::size_t N>
class SpscRing {
  static_assert((N & (N - 1)) == 0, "capacity must be a power of two");

 public:
  // Producer: false when full (the caller counts a drop).
  bool push(const T& item) noexcept {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_cache_ == N) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head - tail_cache_ == N) return false;
    }
    items_[head & (N - 1)] = item;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  // Consumer: false when empty.
  bool pop(T& out) noexcept {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_cache_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail == head_cache_) return false;
    }
    out = items_[tail & (N - 1)];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

 private:
  alignas(64) std::atomic<std::size_t> head_{0};
  alignas(64) std::size_t tail_cache_ = 0;  // producer's view of tail
  alignas(64) std::atomic<std::size_t> tail_{0};
  alignas(64) std::size_t head_cache_ = 0;  // consumer's view of head
  alignas(64) std::array<T, N> items_{};
};

}  // namespace triglav::io
