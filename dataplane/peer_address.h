#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "io/endpoint.h"

namespace triglav::dp {

// Where a session's packets go: the peer's address as four atomic words (a
// sockaddr_in6 and its length fit) under a sequence lock, so that the worker receiving
// the session's packets may move it (roaming) while every worker sends to it. A writer
// that finds another one at work leaves the address be; the next packet tries again.
class PeerAddress {
 public:
  void set(const io::Endpoint& e) noexcept {
    const Words w = pack(e);
    std::uint32_t v = seq_.load(std::memory_order_relaxed);
    if ((v & 1) != 0 || !seq_.compare_exchange_strong(v, v + 1, std::memory_order_acquire)) return;
    std::atomic_thread_fence(std::memory_order_release);
    for (std::size_t i = 0; i < w.size(); ++i) words_[i].store(w[i], std::memory_order_relaxed);
    seq_.store(v + 2, std::memory_order_release);
  }
  io::Endpoint get() const noexcept {
    const Words w = load();
    io::Endpoint e;
    std::uint32_t len;
    std::memcpy(&len, w.data(), 4);
    e.len = len;
    std::memcpy(&e.addr, reinterpret_cast<const std::uint8_t*>(w.data()) + 4, len);
    return e;
  }
  bool is(const io::Endpoint& e) const noexcept { return load() == pack(e); }
  bool empty() const noexcept { return (load()[0] & 0xffffffffu) == 0; }

 private:
  using Words = std::array<std::uint64_t, 4>;
  static constexpr std::size_t kMaxLen = 4 * 8 - 4;  // sizeof(sockaddr_in6)
  static Words pack(const io::Endpoint& e) noexcept {
    std::uint8_t b[32] = {};
    const std::uint32_t len = e.len <= kMaxLen ? e.len : 0;
    std::memcpy(b, &len, 4);
    std::memcpy(b + 4, &e.addr, len);
    Words w;
    std::memcpy(w.data(), b, sizeof b);
    return w;
  }
  Words load() const noexcept {
    for (;;) {
      const std::uint32_t v1 = seq_.load(std::memory_order_acquire);
      Words w;
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = words_[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if ((v1 & 1) == 0 && seq_.load(std::memory_order_relaxed) == v1) return w;
    }
  }
  std::atomic<std::uint32_t> seq_{0};  // odd while a writer is at work
  std::array<std::atomic<std::uint64_t>, 4> words_{};
};

}  // namespace triglav::dp
