// Flows: a 64-bit hash of an inner packet's 5-tuple, and the per-worker table that keeps
// each flow on the uplink it was given while that uplink stays usable (so the tunnel
// never reorders a flow), moving it at once when the uplink becomes Unhealthy or Down.
// Single-threaded: each worker owns its FlowTable. Fixed size, no allocation after start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dataplane/scheduler.h"

namespace triglav::dp {

// Hash of (source, destination, protocol, ports for TCP/UDP/SCTP/UDP-Lite on first
// fragments). Never 0. Packets that are not IPv4/IPv6 hash to 1.
std::uint64_t flow_hash(const std::uint8_t* pkt, std::size_t len) noexcept;

class FlowTable {
 public:
  static constexpr unsigned kProbe = 8;  // slots searched per lookup

  // capacity is rounded up to a power of two.
  explicit FlowTable(std::size_t capacity = 1 << 16);

  // The uplink(s) for a packet of flow `hash` at now_ns: the flow's uplink if it is still
  // usable, else a fresh scheduler pick, remembered. Redundant picks are not remembered
  // (every packet goes everywhere). 0 when nothing is usable.
  UplinkMask route(std::uint64_t hash, std::int64_t now_ns, Scheduler& sched) noexcept;
  // A striped flow's next sequence number (strategy aggregate: dataplane/reorder.h).
  std::uint32_t next_seq(std::uint64_t hash, std::int64_t now_ns) noexcept;

  // Forgets every flow (e.g. after the strategy changed).
  void clear() noexcept;
  std::size_t size() const noexcept { return live_; }
  std::uint64_t moved() const noexcept { return moved_; }  // flows re-pinned off a failed uplink

  static constexpr std::int64_t kIdleNs = 120'000'000'000;  // a flow idle this long is forgotten

 private:
  struct Entry {
    std::uint64_t hash = 0;  // 0 = empty
    std::int64_t last_ns = 0;
    UplinkMask uplink = 0;
    std::uint32_t seq = 0;  // striped flows: the next packet's sequence number
  };
  // The flow's entry, made (fresh) if it had none: an empty slot, else a stale one, else
  // the least recently used of its probe window.
  Entry& entry(std::uint64_t hash, std::int64_t now_ns, bool& fresh) noexcept;
  std::vector<Entry> slots_;
  std::size_t mask_;
  std::size_t live_ = 0;
  std::uint64_t moved_ = 0;
};

}  // namespace triglav::dp
