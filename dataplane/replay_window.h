// Exactly-once windows, safe for several workers at once without a lock.
//
// ReplayWindow (per session and sender, over the 64-bit AEAD counters) and DedupWindow
// (per client and sender, over the 32-bit sequence numbers that copies on several
// uplinks share) accept each number at most once and refuse numbers more than kWindow
// behind the highest one seen. With SO_REUSEPORT, one client's uplinks may arrive at
// different workers, and a roaming uplink may move between them, so both windows take
// concurrent callers.
//
// The bits live in BlockBitmap: 128 words of 64 bits; the numbers come in blocks of 32,
// and block b uses word b mod 128. A word holds a used flag (bit 63), the number of the
// block it currently stands for (bits 32-62, modulo 2^31) and which of that block's 32
// numbers were seen (bits 0-31). A number of a newer block takes its word over, a number
// of an older one is refused: one compare-and-swap per number, no shifting and no
// clearing pass. Block numbers only ever move forward in a word, so a number accepted
// once is refused from then on, whatever the interleaving of threads.
//
// Call only after the packet's AEAD tag has verified, so forged packets cannot move
// the windows.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace triglav::dp {

class BlockBitmap {
 public:
  static constexpr unsigned kWords = 128;

  // True the first time `number` is seen. block_mask: block numbers (number >> 5) are
  // compared modulo block_mask + 1 (a power of two, at most 2^31), as serial numbers.
  [[nodiscard]] bool test_and_set(std::uint64_t number, std::uint64_t block_mask) noexcept {
    const std::uint64_t block = (number >> 5) & block_mask;
    const std::uint64_t bit = std::uint64_t{1} << (number & 31);
    std::atomic<std::uint64_t>& word = words_[(number >> 5) % kWords];
    std::uint64_t cur = word.load(std::memory_order_relaxed);
    for (;;) {
      std::uint64_t next = kUsed | block << 32 | bit;  // an unused word, or an older block's
      if ((cur & kUsed) != 0) {
        const std::uint64_t held = (cur >> 32) & 0x7fffffff;
        if (held == block) {
          if ((cur & bit) != 0) return false;
          next = cur | bit;
        } else if (((held - block) & block_mask) <= (block_mask >> 1)) {
          return false;  // the word already stands for a newer block
        }
      }
      if (word.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return true;
    }
  }

  // Whether `number` was seen, as far as the bits still tell: false when its word stands
  // for an older block (or none), true when it stands for a newer one (too old to tell).
  [[nodiscard]] bool test(std::uint64_t number, std::uint64_t block_mask) const noexcept {
    const std::uint64_t block = (number >> 5) & block_mask;
    const std::uint64_t cur = words_[(number >> 5) % kWords].load(std::memory_order_relaxed);
    if ((cur & kUsed) == 0) return false;
    const std::uint64_t held = (cur >> 32) & 0x7fffffff;
    if (held == block) return (cur & std::uint64_t{1} << (number & 31)) != 0;
    return ((held - block) & block_mask) <= (block_mask >> 1);
  }

 private:
  static constexpr std::uint64_t kUsed = std::uint64_t{1} << 63;
  std::array<std::atomic<std::uint64_t>, kWords> words_{};
};

class ReplayWindow {
 public:
  static constexpr unsigned kWords = BlockBitmap::kWords;
  // Counters this far behind the highest one seen are still accepted once.
  static constexpr std::uint64_t kWindow = (kWords - 1) * 32;  // 4064 >= 2048

  // The highest counter accepted so far (0 before any).
  std::uint64_t top() const noexcept { return top_.load(std::memory_order_relaxed); }

  // True if counter is new (and records it); false for a duplicate or a counter that
  // fell out of the window.
  [[nodiscard]] bool check_and_update(std::uint64_t counter) noexcept {
    std::uint64_t top = top_.load(std::memory_order_relaxed);
    if (counter <= top && top - counter >= kWindow) return false;
    // Block numbers modulo 2^31 compare correctly while a word is less than 2^35
    // counters behind, which no session reaches before its keys expire.
    if (!bits_.test_and_set(counter, 0x7fffffff)) return false;
    while (counter > top && !top_.compare_exchange_weak(top, counter, std::memory_order_relaxed)) {
    }
    return true;
  }

 private:
  std::atomic<std::uint64_t> top_{0};
  BlockBitmap bits_;
};

// Over 32-bit numbers that wrap (serial-number arithmetic, RFC 1982): the first number
// seen anchors the window.
class DedupWindow {
 public:
  static constexpr std::uint32_t kWindow = (BlockBitmap::kWords - 1) * 32;

  // True the first time seq is seen (within the window); false for a duplicate or a
  // number too far behind.
  [[nodiscard]] bool check_and_update(std::uint32_t seq) noexcept {
    std::uint64_t top = top_.load(std::memory_order_relaxed);
    if (top == 0 && top_.compare_exchange_strong(top, kStarted | seq, std::memory_order_relaxed))
      top = kStarted | seq;
    const std::uint32_t behind = static_cast<std::uint32_t>(top) - seq;
    if (behind < 0x80000000u && behind >= kWindow) return false;
    if (!bits_.test_and_set(seq, 0x7ffffff)) return false;  // 2^27 blocks of 32
    while (static_cast<std::int32_t>(seq - static_cast<std::uint32_t>(top)) > 0 &&
           !top_.compare_exchange_weak(top, kStarted | seq, std::memory_order_relaxed)) {
    }
    return true;
  }

  // Whether seq was seen (a number too far behind, or before any, counts as seen: there
  // is nothing to ask for). Loss repair asks only for the numbers not seen.
  [[nodiscard]] bool seen(std::uint32_t seq) const noexcept {
    const std::uint64_t top = top_.load(std::memory_order_relaxed);
    if (top == 0) return true;
    const std::uint32_t behind = static_cast<std::uint32_t>(top) - seq;
    if (behind < 0x80000000u && behind >= kWindow) return true;
    return bits_.test(seq, 0x7ffffff);
  }

 private:
  static constexpr std::uint64_t kStarted = std::uint64_t{1} << 32;
  std::atomic<std::uint64_t> top_{0};  // kStarted | the highest number, once one was seen
  BlockBitmap bits_;
};

}  // namespace triglav::dp
