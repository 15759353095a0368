#include "io/tcp_framing.h"

#include <algorithm>

namespace triglav::io {
namespace {

std::size_t frame_length(const std::uint8_t* p) { return static_cast<std::size_t>(p[0]) << 8 | p[1]; }

}  // namespace

bool FrameAssembler::length_ok(std::size_t len) {
  if (len != 0 && len <= max_frame_) return true;
  error_ = len == 0 ? "a frame of length 0"
                    : "a frame of " + std::to_string(len) + " bytes (the tunnel sends at most " +
                          std::to_string(max_frame_) + ")";
  partial_.clear();
  partial_.shrink_to_fit();
  return false;
}

bool FrameAssembler::feed(const std::uint8_t* p, std::size_t n,
                          const std::function<void(const std::uint8_t*, std::size_t)>& on_frame) {
  if (!error_.empty()) return false;
  while (n > 0) {
    if (!partial_.empty()) {  // a frame begun by an earlier read
      if (partial_.size() < 2) {
        partial_.push_back(*p++);
        --n;
        if (!length_ok(frame_length(partial_.data()))) return false;
        continue;
      }
      const std::size_t want = 2 + frame_length(partial_.data()) - partial_.size();
      const std::size_t take = std::min(n, want);
      partial_.insert(partial_.end(), p, p + take);
      p += take;
      n -= take;
      if (take == want) {
        on_frame(partial_.data() + 2, partial_.size() - 2);
        partial_.clear();
        if (partial_.capacity() > 4096) partial_.shrink_to_fit();  // a jumbo frame passed: give its room back
      }
      continue;
    }
    if (n < 2) {
      partial_.assign(p, p + n);
      return true;
    }
    const std::size_t len = frame_length(p);
    if (!length_ok(len)) return false;
    if (n < 2 + len) {
      partial_.assign(p, p + n);
      return true;
    }
    on_frame(p + 2, len);
    p += 2 + len;
    n -= 2 + len;
  }
  return true;
}

}  // namespace triglav::io
