// The client's control thread, private to control/client*.cc: one class whose members
// are defined by topic. client.cc: the loop, control messages, status, probes, health
// and publishing the snapshot; client_uplinks.cc: each uplink's transport, handshakes
// and rekeys, its session, and uplinks coming and going.
#pragma once

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <cstring>
#include <optional>
#include <string>
#include <vector>
#include <stdexcept>
#include <thread>
#include "control/host/dns.h"
#include "control/path_mtu.h"
#include "control/handshake.h"
#include "io/clock.h"
#include "control/prober.h"
#include "control/status_server.h"
#include "crypto/aead.h"
#include "dataplane/handshake_guard.h"
#include "io/privileges.h"
#include "io/system.h"
#include "io/tcp_relay.h"
#include "io/tun_device.h"
#include "control/client.h"

namespace triglav::ctl::client_detail {


using Clock = std::chrono::steady_clock;




// One uplink of the client: its socket (Runtime::uplink(id)), and its handshake in flight
// or its session.
struct Uplink {
  unsigned id = 0;
  std::string name;  // interface, or "default"
  std::optional<ClientHandshake> hs;
  Clock::time_point hs_sent{};
  Clock::time_point next_try{};
  unsigned attempt = 0;
  std::unique_ptr<dp::Session> session;
  Clock::time_point established{};       // of `session`: rekey after rekey_after
  std::unique_ptr<dp::Session> previous;  // replaced by a rekey: still decrypts until
  Clock::time_point previous_until{};     // the server has surely switched
  int ifindex = 0;  // of the pinned interface (0: not pinned)
  bool active = false;     // this uplink id is in use
  bool discovered = false; // added by --auto-discover (and removed when its interface goes)
  dp::HealthState logged = dp::HealthState::Down;  // last state reported in the log
  std::uint64_t handshakes = 0;
  bool behind_nat = false;  // as the last handshake showed
  std::optional<crypto::Mac> cookie;  // from the server's last cookie reply (it is under load)
  Clock::time_point cookie_until{};
  // tcp_fallback: the uplink's datagrams go over a TCP connection (TcpRelay) to `server`
  // instead; `relay` is where its sockets send them. `unanswered_since`: when the current
  // transport's unanswered handshakes began (zero: none unanswered).
  bool tcp = false;
  io::Endpoint relay, server;
  Clock::time_point unanswered_since{};
  unsigned tcp_tries = 0;
  int retries = 0;  // handshakes without an answer since the last session, answer or link event
  PathMtuSearch pmtu;  // what the uplink's path carries (UDP only)
  std::int64_t route_mtu_ns = 0;  // when the kernel's path MTU to the server was last read
  std::uint16_t told_limit = 0;   // the path's datagram limit as last told to the server
  std::int64_t told_ns = 0;       // when (0: never)
};

// An uplink's sockets, one per worker on one port (so the server sees one address
// whichever worker sends): any address of the server's family, pinned to the uplink's
// interface (if one) so its packets really leave there, and marked in full-tunnel mode
// so they keep to the main table.
std::vector<io::UdpSocket> uplink_sockets(const ClientOptions& opt, unsigned workers, const std::string& device);

// The top bit of a Ping's body marks a path-MTU probe (the prober's bodies are send
// times): uplink id in bits 32-39, the datagram's size in the low 32 bits.
inline constexpr std::uint64_t kPathMtuTag = std::uint64_t{1} << 63;


class Client final : public ControlLoop {
 public:
  // Probes measure each uplink and double as keepalives (NAT bindings stay open); an
  // uplink whose probes go unanswered until it is Down handshakes again.
  Client(const ClientOptions& opt, Runtime& rt, std::size_t uplinks, StatusServer& ops, const KernelNat* nat,
         ResolverOverride* resolver)
      : opt_(opt), rt_(rt), ops_(ops), nat_(nat), resolver_(resolver), prober_(opt.probe) {
    group_ = std::make_unique<dp::Group>();
    group_->client_id = crypto::random_u64();
    group_->sink = opt.bench.enabled;  // a benchmark: what the server sends is counted, not delivered
    for (unsigned i = 0; i < ups_.size(); ++i) ups_[i].id = i;
    for (unsigned i = 0; i < uplinks; ++i) {
      ups_[i].active = true;
      ups_[i].name = i < opt.interfaces.size() ? opt.interfaces[i] : "default";
      if (i < opt.interfaces.size()) ups_[i].ifindex = static_cast<int>(if_nametoindex(ups_[i].name.c_str()));
    }
    if (opt.bench.enabled) bench_.emplace(opt.bench);
    if (opt.tcp_fallback) {
      io::TcpRelay::Limits lim;
      lim.nodelay = opt.tcp_nodelay;
      lim.keepalive_s = opt.tcp_keepalive_s;
      relay_.emplace(lim);
    }
  }

  // The uplink ids in use, without copying anything. (A hand-written filter: clang 14,
  // which the sanitizer build uses, cannot compile libstdc++ 12's views::filter.)
  class ActiveUplinks {
   public:
    explicit ActiveUplinks(std::array<Uplink, dp::kMaxUplinks>& a) : first_(a.data()), last_(a.data() + a.size()) {}
    struct It {
      Uplink* p;
      Uplink* last;
      Uplink& operator*() const { return *p; }
      It& operator++() {
        do ++p;
        while (p != last && !p->active);
        return *this;
      }
      bool operator!=(const It& o) const { return p != o.p; }
    };
    It begin() const {
      Uplink* p = first_;
      while (p != last_ && !p->active) ++p;
      return {p, last_};
    }
    It end() const { return {last_, last_}; }
    bool empty() const { return !(begin() != end()); }
    int size() const {
      int n = 0;
      for (It i = begin(); i != end(); ++i) ++n;
      return n;
    }

   private:
    Uplink* first_;
    Uplink* last_;
  };
  ActiveUplinks active_uplinks() { return ActiveUplinks(ups_); }

  int run();

 private:
  // triglav benchmark: starts when the first uplink is up, samples every interval, stops
  // sending at the end of the duration and reports once what was in flight arrived and
  // the server's last counts are in.
  struct Bench {
    explicit Bench(const BenchOptions& o) : opt(o), report(o, stdout, stderr) {}
    BenchOptions opt;
    BenchReport report;
    bool started = false, stopping = false;
    Clock::time_point t0{}, next{}, stop_at{}, last_progress{}, first_up{};
    static constexpr auto kWaitForAll = std::chrono::seconds(2);
    BenchSample last, at_end;
    // The server's received counts are per session: an uplink that loses its session
    // starts again from 0. Summed here per uplink, so the total only grows.
    std::array<std::uint64_t, dp::kMaxUplinks> delivered_seen{};
    std::uint64_t delivered = 0;
    static constexpr auto kDrain = std::chrono::seconds(1);

    BenchSample take(const Client& c) {
      BenchSample s = c.bench_sample(t0);
      std::array<bool, dp::kMaxUplinks> present{};
      for (const auto& u : s.uplinks) {
        if (u.id >= dp::kMaxUplinks) continue;
        present[u.id] = true;
        std::uint64_t& seen = delivered_seen[u.id];
        delivered += u.delivered_bytes >= seen ? u.delivered_bytes - seen : u.delivered_bytes;
        seen = u.delivered_bytes;
      }
      for (unsigned i = 0; i < dp::kMaxUplinks; ++i)
        if (!present[i]) delivered_seen[i] = 0;
      s.delivered = delivered;
      return s;
    }
    static constexpr auto kProgressEvery = std::chrono::milliseconds(200);

    // False once the report is out: the client then closes its sessions and exits.
    bool step(Client& c, bool up, Clock::time_point now) {
      const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.interval_s));
      const auto duration = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.duration_s));
      if (!started) {
        // Every uplink in before the clock starts (handshaken and answered a probe), or
        // kWaitForAll after the first: a late one would otherwise pull the first figures down.
        if (!up) return true;
        if (first_up == Clock::time_point{}) first_up = now;
        if (!c.all_uplinks_measured() && now - first_up < kWaitForAll) return true;
        started = true;
        t0 = last_progress = now;
        next = t0 + interval;
        c.bench_sending_ = opt.upload;
        c.publish();
        last = take(c);
        report.start(last, c.opt_.endpoints.front().to_string());
        return true;
      }
      if (stopping) {
        if (now < stop_at) return true;
        report.finish(at_end, take(c));
        return false;
      }
      const bool over = now >= t0 + duration;
      if (now >= next || over) {
        BenchSample s = take(c);
        if (s.t - last.t > 0.05) report.interval(s);
        last = std::move(s);
        next += interval;
        last_progress = now;
      } else if (now - last_progress >= kProgressEvery) {
        report.progress(take(c));
        last_progress = now;
      }
      if (over) {
        at_end = last;
        stopping = true;
        stop_at = now + kDrain;
        c.bench_sending_ = false;
        c.publish();
      }
      return true;
    }
    // SIGINT or SIGTERM: the totals so far.
    void interrupted(Client& c) {
      if (!started || stopping) return;
      const BenchSample s = take(c);
      report.finish(s, s);
    }
  };

  bool all_uplinks_measured();

  BenchSample bench_sample(Clock::time_point t0) const;

  // What `triglav status` and the metrics show.
  Status status() const override;

  // SIGHUP: the scheduler settings from the configuration, published at once.
  void reload() override;

  void log_counters() override;

  // Rekeying: a new handshake on the uplink after rekey_after (or once a sender has
  // used the keys for kRekeyAfterMessages), retried every retry_delay while the current
  // session carries on; a session still not rekeyed after reject_after is dropped. The
  // replaced session keeps decrypting for kGrace.
  void keep_keys_fresh(Uplink& u, Clock::time_point now);

  void on_message(const dp::ControlMessage& m) override;

  // Probes, health changes (re-published at once; measurements at least every second),
  // and a new handshake for an uplink whose probes went unanswered until it is Down.
  void probe(std::int64_t now);

  // Tells the server, over every other uplink that has a session, that this uplink is
  // down: its return traffic moves at once instead of after its own probes fail.
  void announce_down(const Uplink& down);

  void on_link(int ifindex, bool up);

  void log_health();

  void send_initiation(Uplink& u, Clock::time_point now);

  // retry_delay between handshakes. An uplink without a session whose last max_retries
  // handshakes went unanswered waits twice as long each time after, up to kMaxRetryWait
  // (max_retries 0: never slows down); an answer or its interface coming up starts over.
  std::chrono::milliseconds retry_wait(Uplink& u);
  static constexpr std::chrono::milliseconds kMaxRetryWait{30'000};

  // tcp_fallback: an uplink whose UDP handshakes went unanswered for tcp_fallback_after
  // tries TCP to the server's port; one whose TCP connection fails, or that is not
  // answered over TCP for twice as long, goes back to UDP (and may come back to TCP).
  void choose_transport(Uplink& u, Clock::time_point now);

  void use_udp(Uplink& u, Clock::time_point now);

  // Where the relay's UDP socket sits: an IPv4 address the uplink's sockets reach, so on
  // its own interface for a pinned uplink (a pinned socket reaches no loopback), with
  // the uplink sockets' port (the relay hears only them).
  io::Endpoint relay_side(const Uplink& u) const;

  static io::Endpoint v4_mapped(const io::Endpoint& e) {
    std::uint8_t a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(a + 12, &reinterpret_cast<const sockaddr_in*>(&e.addr)->sin_addr, 4);
    return io::Endpoint::from_ipv6(a, e.port());
  }

  // --auto-discover: every interface that is up with carrier and an IPv4 address, except
  // loopback, point-to-point links (tunnels), TUN/TAP devices (ours and others) becomes an
  // uplink; one that vanishes is removed, one that goes down or loses its address is Down.
  void rescan();
  // Path MTU: each uplink's search moves on (probe), answers come back (on_message), and
  // the largest inner packet every uplink carries becomes the group's MSS clamp.
  void search_path_mtu(Uplink& u, std::int64_t now);
  void path_mtu_answer(std::uint32_t session_index, std::uint64_t body, std::int64_t now);
  void path_mtu_changed(Uplink& u);
  // Group::mss_clamp_packet and max_datagram from the uplinks' results, and the server
  // told each uplink's (ControlKind::PathMtu).
  void update_path_limits(std::int64_t now);
  std::size_t path_mtu_need() const noexcept { return static_cast<std::size_t>(opt_.tun.mtu) + dp::kMaxDataOverhead; }
  bool scanned_ = false;  // the first scan is done

  void add_uplink(const std::string& name);

  void remove_uplink(Uplink& u);

  [[noreturn]] void fail();

  std::string error_text(dp::ErrorCode code) const;

  // NAT between this uplink and the server: the server saw another source port than the
  // socket's, or a source address that is none of the uplink interface's (of any
  // interface for an unbound uplink). A server that does not report (port 0) says nothing.
  bool behind_nat(const Uplink& u, const dp::ResponsePayload& r) const;

  // The IPv4 and IPv6 addresses of interface `ifindex` (0: of every interface), port 0.
  static std::vector<io::Endpoint> addresses_of(int ifindex) {
    std::vector<io::Endpoint> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) continue;
      if (ifindex != 0 && static_cast<int>(if_nametoindex(i->ifa_name)) != ifindex) continue;
      const socklen_t len = i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      out.push_back(io::Endpoint::from_sockaddr(i->ifa_addr, len));
    }
    freeifaddrs(list);
    return out;
  }

  // The server's state for us is new (it restarted, or dropped us): our other uplinks'
  // sessions died with the old one, and its sequence numbers start again, so the
  // duplicate windows must too. A fresh Group gives both; the old one is freed once no
  // worker can see it.
  void on_new_server_epoch(const Uplink& except);

  void install(Uplink& u, ClientHandshake::Established& est, const io::Endpoint& from);

  static constexpr auto kGrace = std::chrono::seconds(10);
  // Servers change their cookie secret every 120 s and accept the one before.
  static constexpr auto kCookieLifetime = std::chrono::seconds(120);

  // keep_receiving: the session goes on decrypting for kGrace (as previous), so that what
  // the server still sends on it, until it learns the uplink went away, is delivered
  // once the path is back rather than dropped as an unknown index.
  void drop_session(Uplink& u, bool keep_receiving = false);

  void retire(std::unique_ptr<dp::Session> s);

  // One route for the server: every uplink with a session, in the configured strategy.
  void publish();

  const ClientOptions& opt_;
  Runtime& rt_;
  StatusServer& ops_;
  const KernelNat* nat_;  // --gateway, for its entry count
  ResolverOverride* resolver_;  // --dns (null without); may wait for the server's address
  std::uint64_t handshakes_ = 0;
  std::uint64_t last_timestamp_ = 0;  // the newest initiation timestamp sent (send_initiation)
  // The low byte of every receiver index we choose (1-255: an index is never 0).
  const std::uint32_t index_low_ = static_cast<std::uint32_t>(crypto::random_u64() % 255) + 1;
  io::Ipv4Prefix address_ = opt_.tun.address;  // our tunnel address (0 until assigned)
  dp::SchedulerConfig sched_ = opt_.sched;  // SIGHUP may change these two
  std::vector<double> weights_ = opt_.weights;
  bool warned_max_ = false;
  Prober prober_;
  std::int64_t last_publish_ = 0;
  Runtime::StripeTold stripe_told_;  // what the server was last told we stripe over
  std::unique_ptr<dp::Group> group_;  // ours: sequence numbers and duplicate windows
  std::uint64_t server_epoch_ = 0;     // the server's state for us, as the last response named it
  dp::HandshakeMacKeys mac_keys_ = dp::HandshakeMacKeys::for_server(opt_.key.server_key);
  std::array<Uplink, dp::kMaxUplinks> ups_;  // by uplink id
  std::optional<dp::ErrorCode> last_error_;
  std::uint64_t version_ = 0;
  std::uint32_t server_ip_ = 0;  // the server's tunnel address (benchmark packets go there)
  bool v6_tried_ = false;        // the IPv6 address from the server's prefix was set up (or failed)
  bool bench_sending_ = false;   // a benchmark upload is running
  std::optional<Bench> bench_;
  std::optional<io::TcpRelay> relay_;  // tcp_fallback: the uplinks' TCP connections
  std::string last_tcp_error_;         // why the last TCP fallback failed
  bool w_stopped_ = false;  // SIGINT or SIGTERM ended the run
  Clock::time_point rescan_at_{};
};

}  // namespace triglav::ctl::client_detail
