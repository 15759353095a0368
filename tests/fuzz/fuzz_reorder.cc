// The reorder buffer under any sequence of striped packets: each input is a script of
// offers (flow, uplink, sender, sequence numbers moving by any amount, time by any step)
// and expiries, with loss repair on or off and packets sent again among them. Whatever
// the script, the buffer never holds more than its pool, every slot it hands out comes
// back, nothing it releases is longer than what came in, it asks for no more than
// kMaxAsks gaps at once and only of senders that sent, and a final expiry releases
// everything.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/reorder.h"
#include "tests/fuzz/fuzz_input.h"

using namespace triglav;
using fuzz::Reader;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dp::ReorderConfig cfg;
  cfg.slots = 32;
  cfg.slot_bytes = 64;
  cfg.headroom = 8;
  cfg.per_flow = 16;
  cfg.flows = 8;
  cfg.senders = 4;
  dp::Reorder r(cfg);
  std::vector<std::uint32_t> out;  // slots released and not yet freed
  const auto drain = [&] {
    r.drain([&](const dp::Reorder::Ready& x) {
      if (x.len > cfg.slot_bytes - cfg.headroom) __builtin_trap();
      out.push_back(x.slot);
    });
  };
  Reader in{data, size};
  std::int64_t now = 1;
  std::uint32_t send[4] = {}, fseq[8] = {};
  std::uint8_t payload[64] = {};
  while (in.n > 0) {
    const auto op = in.take<std::uint8_t>();
    now += in.take<std::uint16_t>() * 1000;
    if ((op & 7) == 0) {
      r.expire(now);
    } else {
      const unsigned flow = op >> 5 & 7, sender = op >> 3 & 3;
      send[sender] += in.take<std::int8_t>();
      fseq[flow] += static_cast<std::uint32_t>(in.take<std::int8_t>());
      dp::Reorder::Packet p;
      p.client = op & 1;
      p.sender = static_cast<std::uint8_t>(sender);
      p.uplink = in.take<std::uint8_t>() % 20;  // some past kMaxUplinks
      p.send_seq = send[sender];
      p.flow_seq = fseq[flow];
      p.flow = flow;
      p.data = payload;
      p.len = in.take<std::uint8_t>() % 80;  // some longer than a slot
      p.uplinks = in.take<std::uint16_t>();
      const auto extra = in.take<std::uint8_t>();
      p.resent = (extra & 1) != 0;
      p.repair_ns = (extra >> 1) * 2'000'000LL;  // some beyond kMaxWaitNs
      r.offer(p, in.take<std::uint8_t>() * 1'000'000LL, now);
      std::size_t asks = 0;
      r.drain_asks([&](const dp::Reorder::Ask& a) {
        if (a.client > 1 || a.sender > 3 || ++asks > dp::Reorder::kMaxAsks) __builtin_trap();
      });
    }
    drain();
    if (r.held() > cfg.slots || r.held() + r.free_slots() + out.size() != cfg.slots) __builtin_trap();
    if (!out.empty() && (op & 0x40)) {  // some writes complete now, some later
      r.free_slot(out.back());
      out.pop_back();
    }
  }
  r.expire(now + dp::Reorder::kMaxWaitNs + 1);
  drain();
  if (r.held() != 0) __builtin_trap();
  for (std::uint32_t s : out) r.free_slot(s);
  if (r.free_slots() != cfg.slots) __builtin_trap();
  return 0;
}
