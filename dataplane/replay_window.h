// Sliding-window replay check over 64-bit counters (RFC 6479 style: a ring of bitmap
// words, cleared word by word as the window advances, no bit shifting).
// Call only after the packet's AEAD tag has verified, so forged packets cannot move
// the window. Single-threaded: owned by the worker that receives the sender's packets.
#pragma once

#include <array>
#include <cstdint>

namespace triglav::dp {

class ReplayWindow {
 public:
  static constexpr unsigned kWords = 64;
  // Counters this far behind the highest one seen are still accepted once.
  static constexpr std::uint64_t kWindow = (kWords - 1) * 64;  // 4032 >= 2048

  // True if counter is new (and records it); false for a duplicate or a counter that
  // fell out of the window.
  [[nodiscard]] bool check_and_update(std::uint64_t counter) noexcept {
    if (counter > top_) {
      const std::uint64_t cur = top_ >> 6;
      std::uint64_t diff = (counter >> 6) - cur;
      if (diff > kWords) diff = kWords;
      for (std::uint64_t i = 1; i <= diff; ++i) bits_[(cur + i) & (kWords - 1)] = 0;
      top_ = counter;
    } else if (top_ - counter >= kWindow) {
      return false;
    }
    std::uint64_t& word = bits_[(counter >> 6) & (kWords - 1)];
    const std::uint64_t bit = std::uint64_t{1} << (counter & 63);
    if (word & bit) return false;
    word |= bit;
    return true;
  }

 private:
  std::uint64_t top_ = 0;
  std::array<std::uint64_t, kWords> bits_{};
};

}  // namespace triglav::dp
