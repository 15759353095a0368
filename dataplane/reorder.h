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
//     comes late (without repair only), relaxing over about kFillMemoryNs; at most
//     kMaxWaitNs;
//   - a packet older than next (its gap was given up) is delivered at once: the inner
//     TCP receiver would rather have it late than retransmitted.
// Loss repair (when the sender's peer agreed to it: Packet::repair_ns > 0):
//   - a gap declared lost is not given up at once but asked for (an Ask, which the
//     worker turns into a Nack naming the sequence numbers between the packets on
//     either side of the gap that never arrived), and waits repair_ns from then for the
//     packet sent again (Packet::resent); then it is given up as lost. (A fixed wait of
//     about the fastest uplink's RTT: holding a flow longer for the repairs that come
//     later cost one BBR flow more than it gained.);
//   - for asking, an uplink silent for kQuietNs (or never heard) counts as past the
//     gap too: the sender may have left it right after losing the gap's packet there.
//     Such a gap is not known lost: it waits the larger of repair_ns from the ask and
//     its ordinary wait, and is given up as a timeout, unless the uplinks later show it
//     lost (then as above);
//   - every lost gap of a flow is asked for once, as soon as it is known lost, not only
//     the first; a packet held inside a gap already asked for waits as the packet that
//     asked does;
//   - a packet sent again moves no uplink past anything and teaches no wait, and late
//     packets no longer lengthen the wait (a gap is given up for a lost packet, not for
//     want of waiting). A loss with nothing sent after it is not asked for.
// Memory is fixed at construction: a pool of slots shared by all flows, at most
// `per_flow` held per flow, `flows` flows and `senders` senders tracked. When a bound is
// hit the oldest gap is given up (counted), never more memory.
//
// Single-threaded: one Reorder per worker. A released packet's slot stays taken until
// the caller frees it (its TUN write completed).
#pragma once

#include <cstddef>
#include <climits>
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
  std::uint64_t repair_asked = 0;  // lost gaps asked for again (repair)
  std::uint64_t repaired = 0;      // packets sent again that arrived in time to be put in order
  // Residence of held packets, from arrival to release, in doubling buckets:
  // < 1, 1-2, 2-4, 4-8, 8-16, 16-32, 32-64, 64-128, >= 128 ms.
  static constexpr int kResidenceBuckets = 9;
  std::uint64_t residence[kResidenceBuckets] = {};
};

class Reorder {
 public:
  static constexpr std::int64_t kMaxWaitNs = 250'000'000;
  static constexpr std::int64_t kFillMemoryNs = 10'000'000'000;
  // Repair: an uplink silent this long while a gap waits counts as past it when asking.
  static constexpr std::int64_t kQuietNs = 10'000'000;

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
    // > 0: the peer sends lost packets again when asked; a gap asked for waits this long
    // for its repair. 0: a lost gap is given up at once.
    std::int64_t repair_ns = 0;
    bool resent = false;  // a packet sent again (kDataResent)
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
  // A lost gap to ask the peer for: the sequence numbers of sender `sender` of client
  // `client` after `after` and before `before` (the packets on either side of the gap;
  // the missing ones are among those in between that never arrived).
  struct Ask {
    std::uint64_t client;
    std::uint8_t sender;
    std::uint32_t after;
    std::uint32_t before;
  };
  // Calls fn(Ask) for every gap asked for since the last call (after offer()).
  template <typename F>
  void drain_asks(F&& fn) {
    for (std::size_t i = 0; i < asks_.size(); ++i) fn(asks_[i]);
    asks_.clear();
  }
  static constexpr std::size_t kMaxAsks = 64;  // asked at once; more wait for the next offer
  bool asking() const noexcept { return !asks_.empty(); }

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
  // A wait learnt from what gaps needed lately: the longest, relaxing linearly to nothing
  // over kFillMemoryNs.
  struct Learnt {
    double ns = 0;
    std::int64_t at_ns = 0;
    void note(double took, std::int64_t now) noexcept;
    // The larger of `floor` and what was learnt with a quarter more and 2 ms; at most
    // kMaxWaitNs.
    std::int64_t wait(std::int64_t floor, std::int64_t now) const noexcept;
  };
  struct Sender {
    std::uint64_t key = 0;  // 0: empty
    std::uint64_t client = 0;
    std::uint8_t id = 0;
    std::int64_t last_ns = 0;
    UplinkMask seen = 0;                      // uplinks that delivered any
    std::uint32_t max_seq[kMaxUplinks] = {};  // highest send sequence seen per uplink
    std::int64_t seen_ns[kMaxUplinks] = {};   // when
    Learnt fill;  // how long gaps needed to fill, lately
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
    std::uint32_t last = 0;      // the highest sequence held (held > 0)
    std::uint32_t last_send = 0;  // the send sequence of the packet before next
    std::int64_t repair_ns = 0;  // see Packet::repair_ns
    // Repair: the gaps before scan were asked for (or were no gaps); scan_prev is the
    // send sequence of the packet before scan (when scan is after next).
    std::uint32_t scan = 0;
    std::uint32_t scan_prev = 0;
  };
  struct Slot {
    std::int64_t arrived_ns = 0;
    std::int64_t asked_ns = 0;  // the gap in front of it was asked for then (0: not)
    std::uint32_t send_seq = 0;
    std::uint32_t flow_seq = 0;
    std::uint32_t len = 0;
    bool partial = false;
    bool asked_lost = false;  // asked for when known lost (not only for a quiet uplink)
    // When the wait for the gap in front of it started: its arrival, or for a packet held
    // inside a gap already asked for, that of the packet that asked.
    std::int64_t since_ns = 0;
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
  // Gives up gaps while every recently active uplink has moved past them (with repair:
  // asks for them first, and gives them up once their repair is overdue).
  void settle(Flow& f, UplinkMask candidates, std::int64_t now) noexcept;
  // Whether every uplink that may carry the sender's packets delivered one sent at or
  // after `sent` (so none still carries one sent before it). With quiet_ns, an uplink
  // silent longer than that (or never heard) counts as past too: it carries nothing now.
  bool moved_past(const Sender& s, UplinkMask candidates, std::uint32_t sent, std::int64_t left_window,
                  std::int64_t now, std::int64_t quiet_ns = INT64_MAX) const noexcept;
  // Asks for the flow's lost gaps from f.scan on, stopping at the first not known lost.
  void ask_lost(Flow& f, const Sender& s, UplinkMask candidates, std::int64_t left_window, std::int64_t now) noexcept;
  // When the first gap's wait (or its repair's) runs out.
  std::int64_t deadline_of(const Flow& f) noexcept;
  void emit(Flow& f, std::uint32_t seq, std::int64_t now) noexcept;
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
  std::vector<Ask> asks_;
  std::size_t held_total_ = 0;
  ReorderStats stats_;
};

}  // namespace triglav::dp
