// A Group is one client as the workers see it: its tunnel address and networks (server
// side), its per-worker schedulers and sequence numbers, and the window that delivers
// each of its packets once however many uplinks carried copies.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "dataplane/lazy_slots.h"
#include "dataplane/replay_window.h"
#include "dataplane/scheduler.h"
#include "dataplane/stripe.h"
#include "dataplane/wire.h"

namespace triglav::dp {

// Per (client, worker): the worker's scheduler for this client's uplinks and the
// sequence numbers it stamps on the client's Data packets.
struct alignas(64) GroupWorkerState {
  Scheduler sched;
  Striper stripe;  // strategy aggregate: the uplink of each packet
  std::uint64_t views_version = 0;  // the GroupRoute version sched was last updated from
  std::uint32_t next_seq = 0;
};

// A network a client routes behind it (server side: client_routes), big-endian.
struct Subnet {
  std::uint32_t net_be = 0, mask_be = 0;
  bool contains(std::uint32_t addr_be) const noexcept { return (addr_be & mask_be) == net_be; }
};
inline constexpr std::size_t kMaxClientSubnets = 8;
inline constexpr std::int64_t kDefaultReorderWaitNs = 50'000'000;

// A Group's serial: unique for the life of the process (never reused, unlike its
// address), so that a stored packet (dataplane/repair.h) only ever goes back to the
// client it was sent to.
std::uint64_t next_group_serial() noexcept;

struct Group {
  const std::uint64_t serial = next_group_serial();
  std::uint64_t client_id = 0;
  std::uint64_t epoch = 0;          // server side: sent in handshake responses (ResponsePayload)
  std::uint32_t inner_ipv4_be = 0;  // server side: the client's tunnel address
  // Server side: networks behind the client that it may send from and that are routed
  // to it (set before the group is first published, then fixed).
  std::array<Subnet, kMaxClientSubnets> subnets{};
  std::uint8_t n_subnets = 0;
  // Whether the client may send from this inner source address.
  bool owns(std::uint32_t src_be) const noexcept {
    if (src_be == inner_ipv4_be) return true;
    for (std::uint8_t i = 0; i < n_subnets; ++i)
      if (subnets[i].contains(src_be)) return true;
    return false;
  }
  // A benchmark session's group (set before it is first published): received Data is
  // counted and dropped instead of written to the TUN.
  bool sink = false;
  // Server side: this client run asked for a tunnel address another run still holds.
  // Until the address moves to it (the control thread clears this), its sessions only
  // confirm themselves: their Data is dropped as drop_bad_source.
  std::atomic<bool> contending{false};
  // Client side: the largest inner packet every usable uplink's path carries, when some
  // path carries less than the tunnel MTU (its path MTU, probed by the control thread);
  // 0 when all carry it. TCP SYNs both ways get their MSS clamped to fit it.
  std::atomic<std::uint16_t> mss_clamp_packet{0};
  // The largest datagram each uplink's path carries (by uplink id), where it carries less
  // than full tunnel packets need; 0: it carries them, or nothing is known. Set by the
  // control thread (client: its path-MTU search; server: what the client reports, as
  // ControlKind::PathMtu). Bigger packets go on it as tunnel fragments.
  std::array<std::atomic<std::uint16_t>, kMaxUplinks> max_datagram{};
  // How long a gap in a striped flow from this client may wait at the receiver
  // (dataplane/reorder.h): the uplinks' one-way-delay spread plus a jitter allowance,
  // set by the control thread with each route it publishes (make_route).
  std::atomic<std::int64_t> reorder_wait_ns{kDefaultReorderWaitNs};
  // How long a gap declared lost waits for the packet sent again (dataplane/repair.h):
  // about the round trip of the fastest uplink; 0 when no session of the group's peer
  // takes repairs (the gap is given up at once). Set with reorder_wait_ns.
  std::atomic<std::int64_t> repair_wait_ns{0};
  // The uplinks with a session that is not Down, as this side's control thread sees
  // them (make_route): the uplinks a gap's packet may still be on.
  std::atomic<UplinkMask> live_uplinks{0};
  // The uplinks the peer says it stripes over (ControlKind::StripeUplinks; all until it
  // says): of the live ones, the only ones a gap's packet may still be on.
  std::atomic<UplinkMask> peer_striped{~UplinkMask{0}};
  // Made by each worker when it first sends to this client, and by the receiving worker
  // for each peer sender whose Data first arrives: a client holds state only for the
  // workers and senders that exist.
  LazySlots<GroupWorkerState, kMaxWorkers> workers;
  LazySlots<DedupWindow, kMaxSenders> dedup;  // by the peer's sender id
};

}  // namespace triglav::dp
