// The receiver's reorder buffer for striped flows (strategy aggregate): the packets of
// one inner flow, sent over several uplinks, are written to the TUN in the order they
// were sent, flow by flow, so that a loss on one flow never holds another back.
//
// Each striped Data packet names its sender (the counter's top bits), its uplink, its
// place in everything that sender sent to us (the send sequence: the Data sequence
// number) and its place in its flow (the flow sequence). Per flow:
//   - the packet the flow waits for (next) is delivered at once, and so are the held
//     packets that follow it without a gap;
//   - a packet after a gap is held (copied into a slot of the worker's pool);
//   - a gap is LOST, and what is held behind it released, as soon as every uplink that
//     may carry this sender's packets (the group's live uplinks that the peer says it
//     stripes over, Group::peer_striped, heard from within the last uplink_active_ns;
//     any other only within a wait of its last packet, what was in flight on it when it
//     was left) has delivered one sent after the gap (an uplink delivers in order, so
//     the missing packet is on none of them), or when the gap has waited its wait
//     time, whichever comes first. A live uplink not heard from lately keeps the gap
//     open: nothing says it moved past. The wait is the larger of the
//     group's (the uplinks' one-way-delay spread plus a jitter allowance, from the
//     control thread's measurements) and what this sender's gaps needed lately: how
//     long filled gaps had waited, with a quarter more, raised at once when a packet
//     comes late, relaxing over about kFillMemoryNs; at most kMaxWaitNs;
//   - a packet older than next (its gap was given up) is delivered at once: the inner
//     TCP receiver would rather have it late than retransmitted.
// Memory is fixed at construction: a pool of slots shared by all flows, at most
// `per_flow` held per flow, `flows` flows and `senders` senders tracked. When a bound is
// hit the oldest gap is given up (counted), never more memory.
//
// Single-threaded: one Reorder per worker. A released packet's slot stays taken until
// the caller frees it (its TUN write completed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "dataplane/scheduler.h"

namespace triglav::dp {

struct ReorderConfig {
  std::uint32_t slots = 8192;      // packets held at once, all flows together
  std::uint32_t slot_bytes = 1600;  // the largest inner packet plus the headroom asked for
  std::uint32_t headroom = 0;       // bytes kept free in front of each held packet
  std::uint32_t per_flow = 4096;    // packets one flow may hold (a power of two): 150 ms at 300 Mbit/s
  std::uint32_t flows = 256;        // striped flows tracked at once (a power of two)
  std::uint32_t senders = 256;      // (client, sender) pairs tracked (a power of two)
  std::int64_t uplink_active_ns = 1'000'000'000;  // an uplink silent longer no longer counts
  std::int64_t flow_idle_ns = 10'000'000'000;     // a flow (or sender) idle longer may be reused
};

// What happened to the packets (the worker adds these to its counters).
struct ReorderStats {
  std::uint64_t in_order = 0;     // delivered at once, next in their flow
  std::uint64_t held = 0;         // held behind a gap (reordered)
  std::uint64_t late = 0;         // arrived after their gap was given up; delivered
  std::uint64_t lost_gaps = 0;    // gaps given up because every uplink had moved past them
  std::uint64_t timeout_gaps = 0;  // gaps given up when their wait ran out
  std::uint64_t overflows = 0;    // gaps given up because a bound (pool, flow, window) was hit
  std::uint64_t untracked = 0;    // packets of a flow that found no room in the table: not reordered
  // Residence of held packets, from arrival to release, in doubling buckets:
  // < 1, 1-2, 2-4, 4-8, 8-16, 16-32, 32-64, 64-128, >= 128 ms.
  static constexpr int kResidenceBuckets = 9;
  std::uint64_t residence[kResidenceBuckets] = {};
};

class Reorder {
 public:
  static constexpr std::int64_t kMaxWaitNs = 250'000'000;
  static constexpr std::int64_t kFillMemoryNs = 10'000'000'000;

  explicit Reorder(const ReorderConfig& cfg = {});

  // One striped packet, authenticated and unique. client: the group's client id;
  // flow: the inner packet's flow hash; wait_ns: how long a gap of this group may wait.
  struct Packet {
    std::uint64_t client = 0;
    std::uint8_t sender = 0;
    std::uint8_t uplink = 0;
    std::uint32_t send_seq = 0;
    std::uint32_t flow_seq = 0;
    std::uint64_t flow = 0;
    const std::uint8_t* data = nullptr;
    std::uint32_t len = 0;
    bool partial = false;  // kDataChecksumPartial: kept with a held copy
    // The uplinks that may carry this sender's packets (the group's live sessions, as
    // the receiver's control thread sees them): one of them not heard from lately keeps
    // a gap open until its wait runs out.
    UplinkMask uplinks = 0;
  };
  enum class Verdict : std::uint8_t {
    Deliver,     // write p.data now (in order, late, or not reordered), then drain()
    DrainFirst,  // drain() first (what it releases was sent before p), then write p.data
    Held,        // copied; p.data is the caller's again; drain()
    Duplicate,   // the same flow sequence is already held: drop p
  };
  Verdict offer(const Packet& p, std::int64_t wait_ns, std::int64_t now_ns) noexcept;

  // A held packet ready for the TUN, in flow order: slot, its bytes (with `headroom`
  // free bytes in front) and length. The slot is the caller's until free_slot(slot).
  struct Ready {
    std::uint32_t slot;
    std::uint8_t* data;
    std::uint32_t len;
    bool partial;
  };
  // Calls fn(Ready) for every held packet that became ready (after offer() or expire()).
  template <typename F>
  void drain(F&& fn) {
    for (std::size_t i = 0; i < ready_.size(); ++i) fn(ready_[i]);
    ready_.clear();
  }
  // Gives up the gaps whose wait ran out by now_ns; their packets become ready.
  void expire(std::int64_t now_ns) noexcept;
  // The earliest moment a gap's wait runs out; INT64_MAX when nothing waits.
  std::int64_t next_deadline() const noexcept;
  void free_slot(std::uint32_t slot) noexcept { free_.push_back(slot); }
  bool ready() const noexcept { return !ready_.empty(); }

  const ReorderStats& stats() const noexcept { return stats_; }
  std::size_t held() const noexcept { return held_total_; }
  std::size_t free_slots() const noexcept { return free_.size(); }

 private:
  struct Sender {
    std::uint64_t key = 0;  // 0: empty
    std::int64_t last_ns = 0;
    UplinkMask seen = 0;                      // uplinks that delivered any
    std::uint32_t max_seq[kMaxUplinks] = {};  // highest send sequence seen per uplink
    std::int64_t seen_ns[kMaxUplinks] = {};   // when
    double fill_ns = 0;                       // how long gaps needed to fill, lately
    std::int64_t fill_at_ns = 0;
  };
  struct Flow {
    std::uint64_t key = 0;  // 0: empty
    std::int64_t last_ns = 0;
    std::uint32_t sender = 0;  // index into senders_
    std::uint32_t next = 0;    // flow sequence the flow waits for
    std::uint32_t held = 0;    // packets held
    std::int64_t deadline_ns = 0;  // the current gap's wait runs out (held > 0)
    std::int64_t wait_ns = 0;
    std::uint32_t wait_pos = 0;  // index in waiting_ (held > 0)
    std::uint32_t first = 0;     // the lowest sequence held (held > 0)
  };
  struct Slot {
    std::int64_t arrived_ns = 0;
    std::uint32_t send_seq = 0;
    std::uint32_t flow_seq = 0;
    std::uint32_t len = 0;
    bool partial = false;
  };
  static constexpr std::uint32_t kNone = 0xffffffffu;

  Sender* sender_for(std::uint64_t client, std::uint8_t sender, std::int64_t now) noexcept;
  Flow* flow_for(std::uint64_t key, std::uint32_t sender, std::uint32_t flow_seq, std::int64_t now) noexcept;
  // A flow's window cell for seq: its slot + 1, 0 when nothing is held there.
  std::uint32_t& cell(const Flow& f, std::uint32_t seq) noexcept {
    return window_[static_cast<std::size_t>(&f - flows_.data()) * cfg_.per_flow + (seq & (cfg_.per_flow - 1))];
  }
  // The slot holding seq, kNone when none.
  std::uint32_t at(const Flow& f, std::uint32_t seq) noexcept { return cell(f, seq) - 1; }
  std::uint32_t take_slot() noexcept;
  // Releases what follows next without a gap.
  void release_run(Flow& f, std::int64_t now) noexcept;
  // Gives up the gap in front of the first held packet, releasing up to the next gap.
  void skip_gap(Flow& f, std::int64_t now) noexcept;
  // The first held packet's sequence (f.held > 0).
  std::uint32_t first_held(const Flow& f) noexcept;
  // Gives up gaps while every recently active uplink has moved past them.
  void settle(Flow& f, UplinkMask candidates, std::int64_t now) noexcept;
  void emit(Flow& f, std::uint32_t seq, std::int64_t now) noexcept;
  // A gap that took `took` ns to fill (or, late, at least that): the sender's estimate.
  static void note_fill(Sender& s, double took, std::int64_t now) noexcept;
  static std::int64_t wait_for(const Sender& s, std::int64_t group_wait, std::int64_t now) noexcept;
  void drop_flow(Flow& f, std::int64_t now) noexcept;

  ReorderConfig cfg_;
  std::vector<Sender> senders_;
  std::vector<Flow> flows_;
  struct Free {
    void operator()(void* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<std::uint32_t[], Free> window_;  // per flow, per_flow cells (see cell())
  std::vector<Slot> slots_;
  std::unique_ptr<std::uint8_t[], Free> pool_;
  std::vector<std::uint32_t> free_;
  std::vector<std::uint32_t> waiting_;  // flows holding packets
  std::vector<Ready> ready_;
  std::size_t held_total_ = 0;
  ReorderStats stats_;
};

}  // namespace triglav::dp
