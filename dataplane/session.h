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
// belong to worker w. What several workers may touch at once is lock-free:
// Session::rx_windows[s] and Group::dedup[s] (one client's uplinks may arrive at
// different workers, replay_window.h), Session::peer (PeerAddress) and the counters of
// received bytes.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "crypto/aead.h"
#include "crypto/key.h"
#include "dataplane/replay_window.h"
#include "dataplane/scheduler.h"
#include "dataplane/wire.h"
#include "io/endpoint.h"

namespace triglav::dp {

// A session's keys are used for at most this many messages per sender (the counter has
// 56 bits; 16 senders of 2^56 make the 2^60 a session may carry): sealing refuses beyond
// it. Clients rekey long before, at kRekeyAfterMessages.
inline constexpr std::uint64_t kRejectAfterMessages = kCounterMask;
inline constexpr std::uint64_t kRekeyAfterMessages = std::uint64_t{1} << 48;

struct alignas(64) SenderState {
  // Low 56 bits of the nonce counter. Only the owning sender writes it; the control
  // thread reads it to rekey in time.
  std::atomic<std::uint64_t> next_counter{0};
  std::atomic<std::uint64_t> bytes{0};   // Data bytes sent; the control thread samples it
};

// Where a session's packets go: the peer's address as four atomic words (a
// sockaddr_in6 and its length fit) under a sequence lock, so that the worker receiving
// the session's packets may move it (roaming) while every worker sends to it. A writer
// that finds another one at work leaves the address be; the next packet tries again.
class PeerAddress {
 public:
  void set(const io::Endpoint& e) noexcept {
    const Words w = pack(e);
    std::uint32_t v = seq_.load(std::memory_order_relaxed);
    if ((v & 1) != 0 || !seq_.compare_exchange_strong(v, v + 1, std::memory_order_acquire)) return;
    std::atomic_thread_fence(std::memory_order_release);
    for (std::size_t i = 0; i < w.size(); ++i) words_[i].store(w[i], std::memory_order_relaxed);
    seq_.store(v + 2, std::memory_order_release);
  }
  io::Endpoint get() const noexcept {
    const Words w = load();
    io::Endpoint e;
    std::uint32_t len;
    std::memcpy(&len, w.data(), 4);
    e.len = len;
    std::memcpy(&e.addr, reinterpret_cast<const std::uint8_t*>(w.data()) + 4, len);
    return e;
  }
  bool is(const io::Endpoint& e) const noexcept { return load() == pack(e); }
  bool empty() const noexcept { return (load()[0] & 0xffffffffu) == 0; }

 private:
  using Words = std::array<std::uint64_t, 4>;
  static constexpr std::size_t kMaxLen = 4 * 8 - 4;  // sizeof(sockaddr_in6)
  static Words pack(const io::Endpoint& e) noexcept {
    std::uint8_t b[32] = {};
    const std::uint32_t len = e.len <= kMaxLen ? e.len : 0;
    std::memcpy(b, &len, 4);
    std::memcpy(b + 4, &e.addr, len);
    Words w;
    std::memcpy(w.data(), b, sizeof b);
    return w;
  }
  Words load() const noexcept {
    for (;;) {
      const std::uint32_t v1 = seq_.load(std::memory_order_acquire);
      Words w;
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = words_[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if ((v1 & 1) == 0 && seq_.load(std::memory_order_relaxed) == v1) return w;
    }
  }
  std::atomic<std::uint32_t> seq_{0};  // odd while a writer is at work
  std::array<std::atomic<std::uint64_t>, 4> words_{};
};

struct Group;

struct Session {
  std::uint32_t local_index = 0;   // receivers put this in packets to us
  std::uint32_t remote_index = 0;  // we put this in packets to the peer
  std::uint8_t uplink = 0;  // the client's uplink id (header field, slot in its Group)
  std::uint8_t socket = 0;  // which of this side's sockets the session uses (client: = uplink)
  crypto::TransportKey tx_key;  // the cipher agreed in the handshake, and its keys
  crypto::TransportKey rx_key;
  // The peer takes Data with kDataChecksumPartial (agreed in the handshake); set before
  // the session is published, read by the workers.
  bool peer_takes_partial = false;
  PeerAddress peer;  // where packets go; follows the peer's authenticated source
  std::array<SenderState, kMaxSenders> tx;
  std::array<ReplayWindow, kMaxSenders> rx_windows{};
  std::atomic<std::int64_t> last_rx_ns{0};  // written by workers, read by control
  // Whether the peer has proven it holds the keys, from the address the session sends to.
  // A server's session: set by the receiving worker on the first authenticated packet;
  // until then nothing is sent on it but the handshake response, and a rekeyed session
  // does not replace the one that carries the traffic. A client's session starts so (the
  // handshake response proved the server).
  std::atomic<bool> confirmed{false};
  std::int64_t established_ns = 0;  // control thread: when the handshake completed (monotonic)
  // Inner bytes of authenticated Data received on this session (copies included): what
  // the path delivered. Written by the receiving worker, reported to the peer in Pongs.
  std::atomic<std::uint64_t> rx_bytes{0};
  Group* group = nullptr;                    // the client this uplink belongs to

  void set_peer(const io::Endpoint& e) noexcept { peer.set(e); }
  io::Endpoint peer_copy() const noexcept { return peer.get(); }
};

// Per (client, worker): the worker's scheduler for this client's uplinks and the
// sequence numbers it stamps on the client's Data packets.
struct alignas(64) GroupWorkerState {
  Scheduler sched;
  std::uint64_t views_version = 0;  // the GroupRoute version sched was last updated from
  std::uint32_t next_seq = 0;
};

// A network a client routes behind it (server side: client_routes), big-endian.
struct Subnet {
  std::uint32_t net_be = 0, mask_be = 0;
  bool contains(std::uint32_t addr_be) const noexcept { return (addr_be & mask_be) == net_be; }
};
inline constexpr std::size_t kMaxClientSubnets = 8;

struct Group {
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
  std::array<GroupWorkerState, kMaxWorkers> workers{};
  std::array<DedupWindow, kMaxSenders> dedup{};  // by the peer's sender id
};

// Synthetic traffic a worker sends to a group (benchmark sessions): `streams` UDP flows
// of `len`-byte IPv4 packets from src to dst (tunnel addresses, network order).
struct Generator {
  unsigned streams = 0;  // 0: none
  std::uint32_t src_be = 0, dst_be = 0;
  std::uint16_t len = 0;
};

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
};

struct Snapshot {
  std::unordered_map<std::uint32_t, Session*> by_index;
  std::unordered_map<std::uint32_t, const GroupRoute*> by_inner_ipv4;  // server routes
  std::vector<std::pair<Subnet, const GroupRoute*>> by_subnet;         // server: client_routes
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
    for (const auto& [net, route] : by_subnet)  // a handful at most; disjoint by configuration
      if (net.contains(dst_be)) return route;
    return nullptr;
  }
};

// Seals a transport packet in place for the session's peer: writes the header (type,
// ENCRYPTED, uplink, the peer's receiver index, the next counter of `sender`) into
// buf[0, 16) and encrypts buf[16, 16 + body) with the tag after it. Only the thread that
// owns tx[sender] may call it. Returns the datagram's length, or 0 once the sender has
// used the keys for kRejectAfterMessages messages (keys_used_up) or when the cipher
// failed (the buffer is wiped: nothing of it may be sent). aux goes into the header
// (Data: kDataChecksumPartial).
std::size_t seal_transport(Session& s, unsigned sender, PacketType type, std::uint8_t* buf,
                           std::size_t body, std::uint8_t aux = 0) noexcept;
// Whether `sender` has sealed its last allowed message under the session's keys.
bool keys_used_up(const Session& s, unsigned sender) noexcept;

// Writes packet number `n` of a generator at p (room bytes available): an IPv4 UDP
// packet of g.len bytes (at least its 28 bytes of headers, at most room) of stream
// n mod g.streams (source port 40000 + stream, destination port 5201), with a zeroed
// payload (the buffer may hold another packet's bytes). Returns its length.
std::size_t write_generated(std::uint8_t* p, std::size_t room, const Generator& g, unsigned n) noexcept;

// Builds the GroupRoute of a group from its sessions by uplink id; `views` gives the
// measurements (state Down where there is no session).
std::unique_ptr<GroupRoute> make_route(Group* g, const std::array<Session*, kMaxUplinks>& uplinks,
                                       const std::array<UplinkView, kMaxUplinks>& views,
                                       const SchedulerConfig& sched, std::uint64_t version);

// Quiescent-state based reclamation for N workers and one reclaiming thread.
class Qsbr {
 public:
  explicit Qsbr(unsigned workers) : slots_(workers) {}
  // Frees whatever is still retired: by then no worker may run.
  ~Qsbr() { drain(); }
  Qsbr(const Qsbr&) = delete;
  Qsbr& operator=(const Qsbr&) = delete;

  // Worker w: call online() after waking, offline() before blocking, and quiescent()
  // between batches. While offline or between batches it holds no snapshot pointer.
  void online(unsigned w) noexcept { slots_[w].seen.store(global_.load(), std::memory_order_seq_cst); }
  void quiescent(unsigned w) noexcept { online(w); }
  void offline(unsigned w) noexcept { slots_[w].seen.store(0, std::memory_order_release); }

  // Control thread: frees `what` once no worker can still see it. Retiring only queues
  // it: the object may still be in the published snapshot, and a worker may load that
  // snapshot after any quiescent point until the snapshot without it is published. So
  // commit() (which SnapshotHolder::publish calls after the swap) starts its grace
  // period; nothing retired is freed before the next commit.
  void retire(std::function<void()> what);
  void commit();
  // Control thread: runs deleters that are safe now. Returns how many remain.
  std::size_t reclaim();
  // Control thread, after workers stopped: runs every deleter.
  void drain();

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> seen{0};  // 0 = offline
  };
  std::atomic<std::uint64_t> global_{1};
  std::vector<Slot> slots_;
  std::vector<std::function<void()>> pending_;  // retired, no grace period started yet
  std::vector<std::pair<std::uint64_t, std::function<void()>>> retired_;
};

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
