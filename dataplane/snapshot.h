// Sessions, groups and the snapshot through which workers find them.
//
// A Session is one Noise session: one uplink of one client, with its own keys. A Group
// is one client (its tunnel address and its uplinks' sessions, one per uplink id). The
// control thread creates both and publishes an immutable Snapshot (sessions by receiver
// index; a GroupRoute per client with its uplinks and their measurements, by tunnel
// address) through an atomic pointer; workers load it once per batch. Retired snapshots,
// routes, sessions and groups are freed by the control thread once every worker has
// passed a quiescent point (Qsbr), so the packet path takes no lock and no reference
// count.
//
// Mutable per-packet state is split by owner: Session::tx[w] and Group::workers[w]
// belong to worker w (which makes its Group::workers slot when it first sends to the
// client). What several workers may touch at once is lock-free: Session::rx_windows[s]
// and Group::dedup[s] (one client's uplinks may arrive at different workers,
// replay_window.h; each made by the first worker to receive from sender s,
// lazy_slots.h), Session::peer (PeerAddress) and the counters of received bytes.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dataplane/generator.h"
#include "dataplane/group.h"
#include "dataplane/qsbr.h"
#include "dataplane/scheduler.h"
#include "dataplane/session.h"

namespace triglav::dp {

// Immutable once published: a client's uplinks (index = uplink id; null where absent)
// and their latest measurements for the schedulers.
struct GroupRoute {
  Group* group = nullptr;
  std::array<Session*, kMaxUplinks> uplinks{};
  std::array<UplinkView, kMaxUplinks> views{};
  std::size_t n_views = 0;  // 1 + highest uplink id present
  SchedulerConfig sched;    // strategy and weights the workers apply
  std::uint64_t version = 0;
  Generator gen;            // benchmark traffic to send (Snapshot::generate lists the route)
  UplinkMask striped = 0;   // the uplinks striping uses with these views (striped_uplinks)
  std::int64_t repair_ns = 0;  // the peer takes repairs: what a loss costs (repair_wait_ns); else 0
};

// Longest-prefix match of IPv4 addresses onto routes (the server's client_routes): a
// hash table per prefix length in use, tried from the longest. A lookup costs one probe
// per length in use (a few), however many prefixes there are.
class SubnetTable {
 public:
  // A prefix given twice keeps its first route.
  void add(const Subnet& s, const GroupRoute* route);
  const GroupRoute* find(std::uint32_t addr_be) const noexcept {
    for (const Level& l : levels_)
      if (auto it = l.nets.find(addr_be & l.mask_be); it != l.nets.end()) return it->second;
    return nullptr;
  }
  bool empty() const noexcept { return levels_.empty(); }

 private:
  struct Level {
    int len = 0;
    std::uint32_t mask_be = 0;
    std::unordered_map<std::uint32_t, const GroupRoute*> nets;  // network (masked) -> route
  };
  std::vector<Level> levels_;  // longest prefix first
};

struct Snapshot {
  std::unordered_map<std::uint32_t, Session*> by_index;
  std::unordered_map<std::uint32_t, const GroupRoute*> by_inner_ipv4;  // server routes
  SubnetTable by_subnet;                                              // server: client_routes
  const GroupRoute* default_route = nullptr;                          // client: the server
  std::vector<const GroupRoute*> generate;  // routes with benchmark traffic to send (gen)
  // Server: the tunnel's IPv6 /64 (prefix::A.B.C.D is the client with IPv4 A.B.C.D).
  bool has_ipv6 = false;
  std::array<std::uint8_t, 8> ipv6_prefix{};
  std::vector<std::unique_ptr<GroupRoute>> routes;                    // owned

  Session* find_index(std::uint32_t idx) const noexcept {
    auto it = by_index.find(idx);
    return it == by_index.end() ? nullptr : it->second;
  }
  // Whether addr (16 bytes) is prefix::A.B.C.D; then A.B.C.D, network order, in v4_be.
  bool ipv6_client(const std::uint8_t* addr, std::uint32_t& v4_be) const noexcept {
    static constexpr std::uint8_t kZero[4] = {};
    if (!has_ipv6 || std::memcmp(addr, ipv6_prefix.data(), 8) != 0 || std::memcmp(addr + 8, kZero, 4) != 0)
      return false;
    std::memcpy(&v4_be, addr + 12, 4);
    return true;
  }
  const GroupRoute* route_ipv6(const std::uint8_t* dst) const noexcept {
    if (default_route != nullptr) return default_route;
    std::uint32_t v4;
    return ipv6_client(dst, v4) ? route_ipv4(v4) : nullptr;
  }
  const GroupRoute* route_ipv4(std::uint32_t dst_be) const noexcept {
    if (default_route != nullptr) return default_route;
    auto it = by_inner_ipv4.find(dst_be);
    if (it != by_inner_ipv4.end()) return it->second;
    return by_subnet.find(dst_be);
  }
};

// Builds the GroupRoute of a group from its sessions by uplink id; `views` gives the
// measurements (state Down where there is no session).
std::unique_ptr<GroupRoute> make_route(Group* g, const std::array<Session*, kMaxUplinks>& uplinks,
                                       const std::array<UplinkView, kMaxUplinks>& views,
                                       const SchedulerConfig& sched, std::uint64_t version);

// How long a gap in a striped flow may wait at the receiver, from the uplinks'
// measurements: their one-way-delay spread (half the smoothed RTTs' difference) with a
// quarter more, plus kReorderJitterMs; at most kMaxReorderWaitMs (a blackholed uplink
// must not stall a flow longer). make_route stores it in the Group.
inline constexpr double kReorderJitterMs = 10;
inline constexpr double kMaxReorderWaitMs = 250;
std::int64_t reorder_wait_ns(const std::array<UplinkView, kMaxUplinks>& views) noexcept;
// How long a gap declared lost waits for its repair: the Nack's way there and the
// packet's way back, about the least smoothed RTT of the live uplinks (each includes
// the queue on the way to this side, which the packet sent again waits in), with a
// quarter more and kRepairSlackMs; kReorderJitterMs while no RTT is known, at most
// kMaxReorderWaitMs. make_route stores it in the Group when the peer takes repairs.
inline constexpr double kRepairSlackMs = 5;
std::int64_t repair_wait_ns(const std::array<UplinkView, kMaxUplinks>& views) noexcept;
// The uplinks (index = id) whose view is not Down: a route's views are Down where there is
// no session. make_route stores them in the Group (Group::live_uplinks).
UplinkMask live_uplinks(std::span<const UplinkView> views) noexcept;
// Of those, the uplinks striping sends on: without the suspect ones and then without the
// lossy ones (avoid_lossy: with repair, only those losing kRepairLossLimit or more), each
// while another remains (as Striper::pick leaves them). The control
// thread tells the peer (ControlKind::StripeUplinks), whose reorder buffer then waits
// for no other uplink.
UplinkMask striped_uplinks(std::span<const UplinkView> views, bool repair = false) noexcept;

// The published pointer, owned by the control thread.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(Qsbr& qsbr) : qsbr_(qsbr), cur_(new Snapshot) {}
  ~SnapshotHolder() { delete cur_.load(); }

  // Workers.
  const Snapshot* load() const noexcept { return cur_.load(std::memory_order_acquire); }
  // Control thread: publishes next, retires the previous snapshot.
  void publish(std::unique_ptr<Snapshot> next);

 private:
  Qsbr& qsbr_;
  std::atomic<Snapshot*> cur_;
};

}  // namespace triglav::dp
