// Delivers each session sequence number once. Sequence numbers are 32 bits and wrap;
// each is widened to 64 bits around the highest one seen (serial-number arithmetic,
// RFC 1982) and checked in a ReplayWindow, so the window (4032) holds the last few
// thousand numbers with O(1) test-and-insert. Owned by the worker that receives the
// session's packets from one sender (single-threaded, like the replay windows).
#pragma once

#include <cstdint>

#include "dataplane/replay_window.h"

namespace triglav::dp {

class DedupWindow {
 public:
  // True the first time seq is seen (within the window); false for a duplicate or a
  // number too far behind.
  [[nodiscard]] bool check_and_update(std::uint32_t seq) noexcept {
    if (!started_) {  // the first number anchors the 64-bit space
      started_ = true;
      top_ = (std::uint64_t{1} << 32) + seq;
    }
    const std::uint64_t wide = widen(seq);
    if (!w_.check_and_update(wide)) return false;
    if (wide > top_) top_ = wide;
    return true;
  }

 private:
  // The 64-bit value congruent to seq mod 2^32 that is closest to top_ (which starts at
  // 2^32 + the first number, so numbers just below it stay positive).
  std::uint64_t widen(std::uint32_t seq) const noexcept {
    const std::uint64_t base = top_ & ~std::uint64_t{0xffffffff};
    std::uint64_t c = base | seq;
    if (c > top_ && c - top_ > 0x80000000ull && c >= (std::uint64_t{1} << 32)) c -= std::uint64_t{1} << 32;
    else if (c < top_ && top_ - c > 0x80000000ull) c += std::uint64_t{1} << 32;
    return c;
  }

  bool started_ = false;
  std::uint64_t top_ = 0;
  ReplayWindow w_;
};

}  // namespace triglav::dp
