// What the server and the client share: the TUN device and its addresses and routes,
// the uplink sockets, the workers, the snapshot machinery, and the control thread's
// wait for signals and worker messages (on its own io_uring).
//
// Construction sets everything up and the destructor undoes it in reverse (workers
// stopped, routes deleted, TUN closed, which the kernel turns into device removal), so
// every exit path, including exceptions during start-up, leaves nothing behind.
// Control thread only.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "control/status.h"
#include "dataplane/counters.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker/worker.h"
#include "io/endpoint.h"
#include "io/udp_socket.h"

namespace triglav::io {
class Ring;
class Netlink;
class LinkMonitor;
class TunDevice;
}  // namespace triglav::io

namespace triglav::ctl {

// What SIGHUP can change while traffic flows: how packets spread over uplinks.
struct Reloadable {
  dp::SchedulerConfig sched;
  std::vector<double> weights;  // per uplink (client)
  bool metrics = false;         // [metrics] enabled
  io::Endpoint metrics_listen;
};
// Re-reads the configuration; throws std::runtime_error (the old settings stay) on a
// mistake. Empty when there is nothing to re-read.
using ReloadFn = std::function<Reloadable()>;
class StatusServer;
// SIGHUP: runs reload, applies its metrics settings to ops and logs the outcome. The new
// settings, or nothing when there is no file to re-read or it has a mistake (the running
// settings stay).
std::optional<Reloadable> reload_settings(const ReloadFn& reload, StatusServer& ops);

struct TunSetup {
  std::string name = "tg0";
  io::Ipv4Prefix address;  // client: addr_be 0 = the server assigns one
  // Server: its IPv6 address in the tunnel's /64 (prefix::1); none: IPv4 only.
  std::optional<std::array<std::uint8_t, 16>> address6;
  int mtu = 1420;
  std::vector<io::Ipv4Prefix> routes;
  std::vector<io::Ipv6Prefix> routes6;  // client: IPv6 prefixes through the tunnel
  // Client: every packet into the tunnel but the uplinks' own and these prefixes
  // (policy routing; the main table is left alone). docs/OPERATIONS.md, "Routing modes".
  bool full_tunnel = false;
  std::vector<io::Ipv4Prefix> exclude;
  std::vector<io::Ipv6Prefix> exclude6;
  // TCP segmentation and checksums left to us (io::TunDevice, dataplane/offload.h).
  bool offload = true;
  // No TUN at all (triglav benchmark: synthetic traffic only); nothing else above applies.
  bool none = false;
  // Dataplane workers, one TUN queue and one socket per uplink each (worker_count).
  unsigned workers = 0;  // 0: one per CPU
};

// The number of workers for --workers N: N itself, or for 0 one per CPU this process may
// run on; at most dp::kMaxWorkers.
unsigned worker_count(unsigned requested);

// Full tunnel: uplink sockets carry kUplinkMark and keep to the main table; all other
// traffic looks up kTunnelTable, whose default routes lead into the TUN. Our rules use
// priorities kRulePriority .. kRulePriority + 99 (what a start cleans up after a crash).
inline constexpr std::uint32_t kUplinkMark = 0x7467;
inline constexpr unsigned kTunnelTable = 0x7467;
inline constexpr unsigned kRulePriority = 29700;

// What a process that dropped root can no longer undo itself: files to remove on exit
// (the control socket, the pid file; empty entries skipped) and the --dns copy of the
// TUN `dns_tun` (empty: none).
struct RootCleanup {
  std::vector<std::string> files;
  std::string dns_tun;
};
// --user: after set-up and before any thread starts, becomes `user` keeping only
// CAP_NET_ADMIN and CAP_NET_RAW (io/privileges.h). A root helper forked first waits for
// this process to end and then does `cleanup` (it reads nothing but the end of a pipe).
// Throws std::runtime_error with a one-line reason.
void drop_root(const std::string& user, const RootCleanup& cleanup);

// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread (and so in every
// thread it starts later); Runtime receives them through a signalfd.
void block_signals();

// What a control loop (the client's, the server's) does with each turn of Runtime::turn.
class ControlLoop {
 public:
  virtual void log_counters() = 0;                             // SIGUSR1
  virtual void reload() = 0;                                   // SIGHUP
  virtual void on_message(const dp::ControlMessage& m) = 0;    // from a worker
  virtual Status status() const = 0;                           // the control socket, metrics
  // Once the turn's worker messages are all handled (e.g. one publish for many changes).
  virtual void after_messages() {}

 protected:
  ~ControlLoop() = default;
};

class Runtime {
 public:
  // uplinks: by uplink id, tun.workers sockets each (io::UdpSocket::bind_group), the
  // first of which the control thread also sends from.
  Runtime(std::vector<std::vector<io::UdpSocket>> uplinks, const TunSetup& tun);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void start_workers();
  // After publishing a snapshot that lists benchmark traffic: every worker looks at it.
  void wake_workers() noexcept {
    for (auto& w : workers_) w->wake();
  }
  // Server, before start_workers(): workers check initiations (dataplane/handshake_guard.h).
  // relay: the TCP relay's sources (tcp_fallback), so that its clients are limited by
  // their own addresses; null without one.
  void guard_handshakes(const dp::HandshakeMacKeys& keys, const io::RelaySources* relay = nullptr);
  void stop_workers() noexcept;

  struct Wake {
    bool stop = false;  // SIGINT or SIGTERM
    bool dump = false;  // SIGUSR1: log counters
    bool reload = false;  // SIGHUP: re-read what can change at run time
  };
  // Starts watching kernel link events; wait() then delivers them to cb(ifindex, up).
  void watch_links(std::function<void(int ifindex, bool up)> cb);
  // One turn of a control loop: waits up to timeout_ms for a signal or a worker
  // message, then logs the counters (SIGUSR1), reloads (SIGHUP), hands the workers'
  // messages over and answers the control socket and metrics. True once SIGINT or
  // SIGTERM asked the process to stop; the caller's own periodic work follows.
  bool turn(ControlLoop& loop, StatusServer& ops, int timeout_ms);
  // Waits up to timeout_ms for a signal or a worker message.
  Wake wait(int timeout_ms);
  // The next message from any worker (each worker's in order): sessions' messages
  // before handshake datagrams.
  bool pop(dp::ControlMessage& m) noexcept;
  // Client: uplink's handshake in progress has this sender index (0: none), so the
  // workers let its answers through (dp::PendingHandshakes). Before the initiation goes.
  void expect_handshake(unsigned uplink, std::uint32_t sender_index) noexcept;
  unsigned workers() const noexcept { return static_cast<unsigned>(workers_.size()); }

  dp::SnapshotHolder& snapshots() noexcept { return snapshots_; }
  dp::Qsbr& qsbr() noexcept { return qsbr_; }
  // Uplink i's first socket (fd -1 where there is none).
  const io::UdpSocket& uplink(unsigned i) const noexcept {
    return uplinks_[i].empty() ? no_socket_ : uplinks_[i].front();
  }
  // Uplinks added and removed at run time (auto-discovery). add_uplink hands each worker
  // its socket at once; release_uplink asks them to stop using them, and the sockets are
  // closed when every worker's UplinkReleased answer has arrived (uplink_released).
  void add_uplink(unsigned id, std::vector<io::UdpSocket> s);
  void release_uplink(unsigned id);
  void uplink_released(unsigned id) {
    if (++released_[id] >= workers_.size()) uplinks_[id].clear();
  }
  const io::TunDevice& tun() const noexcept { return *tun_; }  // not with TunSetup::none
  std::string tun_name() const;  // "" with TunSetup::none
  // Puts the tunnel address on the TUN once the server assigned it (TunSetup left it
  // 0). Empty on success, else the reason.
  std::string set_address(const io::Ipv4Prefix& addr);
  // The same for the IPv6 address (a /64) the server's prefix gives us; turns IPv6 on
  // on the TUN. Empty on success (and without a TUN), else the reason.
  std::string set_address6(const std::array<std::uint8_t, 16>& addr);
  dp::CounterTotals totals() const noexcept;
  // What client and server status have in common: role, version, uptime, TUN, address,
  // strategy, AEAD and the counters.
  Status status_header(const char* role, const std::string& address, dp::Strategy strategy) const;

  // Seals and sends a transport packet from the control thread (sender kControlSender)
  // to the session's peer. Only while the session's worker cannot write `peer`, or for
  // a peer that does not move (the client's server).
  // A Ping of `datagram` bytes in all (its 8-byte body, then zeros), for the path-MTU
  // search (PathMtuSearch). False when it could not be sealed or sent.
  bool send_padded_ping(dp::Session& s, const io::Endpoint& to, std::uint64_t body, std::size_t datagram);
  bool send_transport(dp::Session& s, dp::PacketType type, const io::Endpoint& to,
                      std::span<const std::uint8_t> body = {});
  // Strategy aggregate: tells the peer which uplinks this side stripes over
  // (route.striped, ControlKind::StripeUplinks) when that changed since `last`, then
  // again after 1, 2, 4 ... up to 32 s while it stays the same (a lost message is
  // repeated; a server of many idle clients does not send each a message a second),
  // over each of the route's sessions that is confirmed, not Down, and whose peer takes
  // striped Data.
  struct StripeTold {
    dp::UplinkMask mask = 0;
    std::int64_t at_ns = 0;
    std::int64_t again_ns = 0;  // the wait before the next repeat
    bool any = false;
  };
  void tell_striping(const dp::GroupRoute& route, StripeTold& last, std::int64_t now_ns);

 private:
  void arm(int fd, std::uint64_t tag);
  void send_command(dp::Worker& w, const dp::UplinkCommand& c);

  std::array<std::vector<io::UdpSocket>, dp::kMaxUplinks> uplinks_;  // by uplink id, then worker
  std::array<unsigned, dp::kMaxUplinks> released_{};  // UplinkReleased answers since release_uplink
  io::UdpSocket no_socket_;
  std::unique_ptr<io::TunDevice> tun_;
  std::vector<std::uint8_t> padded_;  // send_padded_ping's datagram
  std::vector<int> no_tun_;  // TunSetup::none: per worker a socketpair standing in for its queue
  std::int64_t started_ns_ = 0;
  std::unique_ptr<io::Netlink> nl_;
  std::vector<io::Ipv4Prefix> routes_;
  std::vector<io::Ipv6Prefix> routes6_;
  std::vector<std::pair<int, unsigned>> rules_;  // (family, priority) we added
  bool tunnel_table_ = false;
  void route_everything(const TunSetup& tun);
  void remove_policy() noexcept;
  dp::Qsbr qsbr_;
  dp::SnapshotHolder snapshots_;
  std::vector<std::unique_ptr<dp::ControlQueue>> queues_;  // one per worker: sessions' messages
  std::vector<std::unique_ptr<dp::ControlQueue>> handshake_queues_;  // one per worker: handshake datagrams
  dp::PendingHandshakes pending_handshakes_;
  dp::GuardLoad guard_load_;  // server: initiations a second over all workers
  unsigned next_queue_ = 0;
  int event_fd_ = -1;
  int signal_fd_ = -1;
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::LinkMonitor> links_;
  std::function<void(int, bool)> on_link_;
  // What each worker striped, kept for loss repair (declared before the workers, which
  // use it until they stop).
  std::unique_ptr<dp::RepairStores> repair_;
  std::vector<std::unique_ptr<dp::Worker>> workers_;
};

}  // namespace triglav::ctl
