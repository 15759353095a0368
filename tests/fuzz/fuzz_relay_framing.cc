// The TCP fallback's framing (io/tcp_framing.h): any byte stream, cut into reads of any
// sizes, yields exactly the frames a reference parse of the whole stream finds, up to
// the first bad length; nothing after it; never more held than one frame.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/tcp_framing.h"

using namespace triglav;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first byte picks the largest frame (small ones reach the limits quickly), the
  // second seeds the read sizes; the rest is the stream.
  const std::size_t max_frame = 1 + data[0] * 40u;
  unsigned seed = data[1];
  const std::uint8_t* stream = data + 2;
  const std::size_t n = size - 2;

  // Reference: the whole stream at once, by the rules of docs/PROTOCOL.md.
  std::vector<std::vector<std::uint8_t>> want;
  bool want_bad = false;
  for (std::size_t at = 0; at + 2 <= n;) {
    const std::size_t len = static_cast<std::size_t>(stream[at]) << 8 | stream[at + 1];
    if (len == 0 || len > max_frame) {
      want_bad = true;
      break;
    }
    if (at + 2 + len > n) break;
    want.emplace_back(stream + at + 2, stream + at + 2 + len);
    at += 2 + len;
  }

  io::FrameAssembler fa(max_frame);
  std::vector<std::vector<std::uint8_t>> got;
  bool bad = false;
  for (std::size_t at = 0; at < n && !bad;) {
    seed = seed * 1103515245u + 12345u;
    const std::size_t chunk = std::min<std::size_t>(n - at, 1 + (seed >> 16) % 300);
    bad = !fa.feed(stream + at, chunk, [&](const std::uint8_t* d, std::size_t len) {
      if (len == 0 || len > max_frame) __builtin_trap();
      got.emplace_back(d, d + len);
    });
    if (fa.held() > max_frame + 2 + 4096) __builtin_trap();  // at most one frame's worth (and slack)
    at += chunk;
  }
  if (got != want || bad != want_bad) __builtin_trap();
  if (bad && (fa.error().empty() || fa.feed(stream, n, [](const std::uint8_t*, std::size_t) { __builtin_trap(); })))
    __builtin_trap();  // broken for good, and it says why
  return 0;
}
