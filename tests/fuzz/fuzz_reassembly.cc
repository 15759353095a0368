// Tunnel fragment reassembly under any sequence of pieces: each input is a script of
// pieces (which packet, offset, length, last or not, each by any amount, time by any
// step), releases and expiries. The bytes of every piece are a pattern of its packet
// and offset, so whatever the script, a packet the table completes must be exactly that
// pattern over its length (no byte missing, stale or from another packet), never longer
// than the largest packet, and the table never holds more than its entries.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/reassembly.h"
#include "tests/fuzz/fuzz_input.h"

using namespace triglav;
using fuzz::Reader;

namespace {

std::uint8_t pattern(std::uint32_t seq, std::uint32_t session, std::uint32_t at) {
  return static_cast<std::uint8_t>(seq * 31 + session * 17 + at * 7 + (at >> 8));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dp::ReassemblyConfig cfg;
  cfg.entries = 4;
  cfg.max_packet = 300;
  cfg.headroom = 12;
  cfg.timeout_ns = 1'000'000'000;
  dp::Reassembly r(cfg);
  std::vector<std::uint32_t> writing;
  std::uint8_t piece[400];
  Reader in{data, size};
  std::int64_t now = 1;
  while (in.n > 0) {
    const auto op = in.take<std::uint8_t>();
    now += std::int64_t{in.take<std::uint8_t>()} * 10'000'000;
    if ((op & 7) == 0) {
      r.expire(now);
    } else if ((op & 7) == 1) {
      if (!writing.empty()) {
        r.release(writing.front());
        writing.erase(writing.begin());
      }
    } else {
      dp::Reassembly::Piece p;
      p.key = {static_cast<std::uint32_t>(op >> 6), static_cast<std::uint32_t>(op >> 3 & 7), 0};
      // Mostly on the grid, sometimes off it; some past the largest packet.
      const auto o = in.take<std::uint8_t>();
      p.offset = (o & 0x80) ? o : (o & 0x3f) * 8u;
      p.len = in.take<std::uint16_t>() % 400;
      if ((o & 0x40) == 0 && p.len > 8) p.len = p.len / 8 * 8;
      p.last = (op & 4) != 0;
      for (std::uint32_t i = 0; i < p.len; ++i) piece[i] = pattern(p.key.seq, p.key.session, p.offset + i);
      p.data = piece;
      dp::Reassembly::Done d;
      if (r.offer(p, now, d) == dp::Reassembly::Verdict::Complete) {
        if (d.len == 0 || d.len > cfg.max_packet) __builtin_trap();
        for (std::uint32_t i = 0; i < d.len; ++i)
          if (d.data[i] != pattern(p.key.seq, p.key.session, i)) __builtin_trap();
        std::memset(d.data - cfg.headroom, 0xab, cfg.headroom);  // the headroom is ours to write
        writing.push_back(d.entry);
      }
    }
    if (r.in_progress() + writing.size() > cfg.entries) __builtin_trap();
  }
  for (std::uint32_t e : writing) r.release(e);
  r.expire(now + cfg.timeout_ns);
  if (r.in_progress() != 0) __builtin_trap();
  return 0;
}
