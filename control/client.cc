#include "control/client.h"

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

namespace triglav::ctl {
namespace {

using Clock = std::chrono::steady_clock;

// An uplink's sockets, one per worker on one port (so the server sees one address
// whichever worker sends): any address of the server's family, pinned to the uplink's
// interface (if one) so its packets really leave there, and marked in full-tunnel mode
// so they keep to the main table.
std::vector<io::UdpSocket> uplink_sockets(const ClientOptions& opt, unsigned workers, const std::string& device) {
  const std::uint8_t any6[16] = {};
  const bool v6 = opt.endpoints.front().family() == AF_INET6;
  std::vector<io::UdpSocket> s = io::UdpSocket::bind_group(
      v6 ? io::Endpoint::from_ipv6(any6, 0) : io::Endpoint::from_ipv4(0, 0), workers, device, opt.socket_buffer);
  if (opt.tun.full_tunnel)
    for (auto& one : s) one.set_mark(kUplinkMark);
  return s;
}



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
};

class Client {
 public:
  // Probes measure each uplink and double as keepalives (NAT bindings stay open); an
  // uplink whose probes go unanswered until it is Down handshakes again.
  Client(const ClientOptions& opt, Runtime& rt, std::size_t uplinks, StatusServer& ops, const KernelNat* nat)
      : opt_(opt), rt_(rt), ops_(ops), nat_(nat), prober_(opt.probe) {
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
    if (opt.tcp_fallback) relay_.emplace(io::TcpRelay::Limits{});
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

  int run() {
    if (relay_) relay_->start();  // after any --user drop, like the workers
    rt_.start_workers();
    // An uplink whose interface goes down is Down at once, not after its probes time out.
    if (!opt_.interfaces.empty() || opt_.auto_discover)
      rt_.watch_links([this](int ifindex, bool up) {
        on_link(ifindex, up);
        rescan_at_ = Clock::now();  // an interface changed: look again now
      });
    if (opt_.auto_discover) rescan();
    const auto deadline = Clock::now() + std::chrono::milliseconds(opt_.handshake_timeout_ms);
    bool ever_up = false;
    for (;;) {
      const auto w = rt_.wait(20);
      if (w.dump) log_counters();
      if (w.reload) reload();
      dp::ControlMessage m;
      while (rt_.pop(m)) on_message(m);
      ops_.poll([this] { return status(); });
      if (w.stop) {
        w_stopped_ = true;
        break;
      }
      const auto now = Clock::now();
      if (opt_.auto_discover && now >= rescan_at_) rescan();
      for (Uplink& u : active_uplinks()) {
        rt_.expect_handshake(u.id, u.hs ? u.hs->sender_index() : 0);  // none once it ended
        ever_up |= u.session != nullptr;
        if (u.previous && now >= u.previous_until) {
          retire(std::move(u.previous));
          publish();
        }
        if (!u.session && now >= u.next_try) {
          choose_transport(u, now);
          send_initiation(u, now);
        }
        if (u.session) keep_keys_fresh(u, now);
      }
      probe(monotonic_ns());
      if (!ever_up && now >= deadline) fail();
      if (bench_ && !bench_->step(*this, ever_up, now)) break;
    }
    if (bench_ && w_stopped_) bench_->interrupted(*this);
    rt_.stop_workers();
    bool over_tcp = false;
    for (Uplink& u : active_uplinks()) {
      if (u.session) rt_.send_transport(*u.session, dp::PacketType::Close, u.session->peer_copy());
      over_tcp |= u.tcp && u.session;
    }
    // The relay thread frames those Closes onto the TCP connections: a moment for it
    // before the relay goes (a lost Close only leaves the server to time the session out).
    if (over_tcp) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    log_counters();
    return 0;
  }

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

  bool all_uplinks_measured() {
    for (Uplink& u : active_uplinks())
      if (!u.session || prober_.state(u.session.get()) == dp::HealthState::Unknown) return false;
    return true;
  }

  BenchSample bench_sample(Clock::time_point t0) const {
    BenchSample s;
    s.t = std::chrono::duration<double>(Clock::now() - t0).count();
    s.cpu_s = process_cpu_seconds();
    s.uplinks = status().uplinks;  // delivered: summed by Bench::take
    const dp::CounterTotals t = rt_.totals();
    s.sent = t.get(dp::Counter::TxBytes);  // the workers' counts only grow
    s.received = t.get(dp::Counter::RxBytes);
    s.drops = t.drops();
    return s;
  }

  // What `triglav status` and the metrics show.
  Status status() const {
    Status st = rt_.status_header("client", address_.addr_be != 0 ? address_.to_string() : "(not assigned yet)",
                                  sched_.strategy);
    st.state = "connecting";
    for (const Uplink& u : ups_) {
      if (!u.active) continue;
      UplinkStatus us;
      us.id = u.id;
      us.name = u.name;
      us.handshakes = u.handshakes;
      us.state = dp::health_name(dp::HealthState::Down);
      if (u.session) {
        st.state = "connected";
        prober_.fill(us, *u.session);
        us.rx_bytes = u.session->rx_bytes.load(std::memory_order_relaxed);
        us.behind_nat = u.behind_nat;
      }
      if (u.tcp) {
        us.transport = "tcp";
        us.peer = u.server.to_string();
      }
      st.uplinks.push_back(std::move(us));
    }
    st.handshakes = handshakes_;
    if (nat_ != nullptr) {
      st.nat = true;
      st.nat_entries = nat_->active_entries();
    }
    return st;
  }

  // SIGHUP: the scheduler settings from the configuration, published at once.
  void reload() {
    if (auto r = reload_settings(opt_.reload, ops_)) {
      sched_ = r->sched;
      weights_ = std::move(r->weights);
      publish();
    }
  }

  void log_counters() {
    std::string ups;
    for (Uplink& u : active_uplinks()) ups += " " + u.name + "=" + (u.session ? "up" : "down");
    spdlog::info("uplinks:{} counters: {}", ups, rt_.totals().format());
  }

  // Rekeying: a new handshake on the uplink after rekey_after (or once a sender has
  // used the keys for kRekeyAfterMessages), retried every retry_delay while the current
  // session carries on; a session still not rekeyed after reject_after is dropped. The
  // replaced session keeps decrypting for kGrace.
  void keep_keys_fresh(Uplink& u, Clock::time_point now) {
    const auto age = now - u.established;
    if (age >= std::chrono::milliseconds(opt_.reject_after_ms)) {
      spdlog::warn("uplink {} ({}): no rekey within {} s; dropping the session and handshaking again", u.id,
                   u.name, opt_.reject_after_ms / 1000.0);
      drop_session(u);
      return;
    }
    bool used = false;
    for (const auto& t : u.session->tx) used |= t.next_counter.load(std::memory_order_relaxed) >= dp::kRekeyAfterMessages;
    if ((age >= std::chrono::milliseconds(opt_.rekey_after_ms) || used) && now >= u.next_try) send_initiation(u, now);
  }

  void on_message(const dp::ControlMessage& m) {
    if (m.kind == dp::ControlMessage::Kind::UplinkReleased) {
      if (m.uplink < ups_.size() && !ups_[m.uplink].active) rt_.uplink_released(m.uplink);
      return;
    }
    if (m.kind == dp::ControlMessage::Kind::Pong) {
      if (prober_.on_pong(m.session_index, {m.data.data(), m.len}, monotonic_ns())) publish();
      return;
    }
    if (m.kind == dp::ControlMessage::Kind::Close) {
      for (Uplink& u : active_uplinks()) {
        if (u.session && u.session->local_index == m.session_index) {
          spdlog::warn("the server closed the session on uplink {} ({}); handshaking again", u.id, u.name);
          drop_session(u);
        }
      }
      return;
    }
    dp::Header h;
    if (dp::decode_header({m.data.data(), m.len}, h) != dp::HeaderError::Ok) return;
    for (Uplink& u : active_uplinks()) {
      if (!u.hs || h.receiver != u.hs->sender_index()) continue;
      if (h.type == dp::PacketType::Handshake && h.aux == dp::kHandshakeCookie) {
        // The server is under load: it wants our initiation again with mac2 under this
        // cookie (which proves we receive at our address). Sent at once, once per cookie.
        auto c = dp::open_cookie_reply({m.data.data(), m.len}, u.hs->sender_index(), u.hs->mac1(), mac_keys_.cookie);
        if (!c) return;
        const bool fresh = !u.cookie || *u.cookie != *c;
        u.cookie = c;
        u.cookie_until = Clock::now() + kCookieLifetime;
        spdlog::debug("uplink {} ({}): the server is under load and sent a cookie", u.id, u.name);
        if (fresh || !u.hs->has_mac2()) send_initiation(u, Clock::now());
        return;
      }
      if (h.type == dp::PacketType::Error && m.len == dp::kErrorLen) {
        // Unauthenticated: remembered to explain a failure (and logged once it changes
        // while the tunnel runs), nothing more.
        const auto code = static_cast<dp::ErrorCode>(h.aux);
        if (handshakes_ > 0 && last_error_ != code)
          spdlog::warn("uplink {} ({}): the server refused the handshake: {}", u.id, u.name, error_text(code));
        last_error_ = code;
        return;
      }
      auto est = u.hs->finish({m.data.data(), m.len});
      if (!est) {
        spdlog::debug("ignored a {}-byte handshake packet from {}", m.len, m.from.to_string());
        return;
      }
      if (opt_.bench.enabled && !est->response.benchmark) {  // a server that knows no benchmarks
        last_error_ = dp::ErrorCode::BenchmarkRefused;
        u.hs.reset();
        return;
      }
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - u.hs_sent).count();
      if (address_.addr_be == 0) {  // the server chose our tunnel address
        const io::Ipv4Prefix a{est->response.client_ipv4_be, est->response.prefix_len};
        const std::string err = a.addr_be == 0 ? "the server sent none" : rt_.set_address(a);
        if (!err.empty()) {
          spdlog::error("cannot use tunnel address {}: {}", a.to_string(), err);
          u.hs.reset();
          return;
        }
        address_ = a;
        spdlog::info("tunnel address {} assigned by the server", address_.to_string());
      }
      if (!v6_tried_ && !opt_.bench.enabled && est->response.ipv6_prefix != std::array<std::uint8_t, 8>{}) {
        v6_tried_ = true;  // once: the prefix goes with the server's key
        std::array<std::uint8_t, 16> a6{};
        std::memcpy(a6.data(), est->response.ipv6_prefix.data(), 8);
        std::memcpy(a6.data() + 12, &address_.addr_be, 4);
        char text[INET6_ADDRSTRLEN] = {};
        inet_ntop(AF_INET6, a6.data(), text, sizeof text);
        const std::string err = rt_.set_address6(a6);
        if (err.empty()) spdlog::info("IPv6 tunnel address {}/64", text);
        else spdlog::warn("cannot use IPv6 tunnel address {}/64: {}; the tunnel carries IPv4 only", text, err);
      }
      const bool rekey = u.session != nullptr;
      install(u, *est, m.from);
      ++handshakes_;
      ++u.handshakes;
      spdlog::log(rekey ? spdlog::level::debug : spdlog::level::info,
                  "handshake complete with {} in {:.3f} ms; tunnel {} {} (server {}) on uplink {} ({}), {}{}",
                  u.tcp ? u.server.to_string() + "/tcp" : m.from.to_string(), ms, opt_.bench.enabled ? "(none: benchmark)" : rt_.tun_name(), address_.to_string(),
                  io::ipv4_to_string(est->response.server_ipv4_be), u.id, u.name,
                  crypto::cipher_name(u.session->tx_key.cipher()), rekey ? ": rekeyed" : "");
      return;
    }
  }

  // Probes, health changes (re-published at once; measurements at least every second),
  // and a new handshake for an uplink whose probes went unanswered until it is Down.
  void probe(std::int64_t now) {
    bool changed = prober_.tick(now, [this](dp::Session& s, std::uint64_t body) {
      std::uint8_t b[8];
      dp::store_le64(b, body);
      rt_.send_transport(s, dp::PacketType::Ping, s.peer_copy(), b);
    });
    for (Uplink& u : active_uplinks()) {
      if (u.session && prober_.state(u.session.get()) == dp::HealthState::Down) {
        spdlog::warn("uplink {} ({}) is down: no answer from the server; handshaking again", u.id, u.name);
        announce_down(u);
        drop_session(u, /*keep_receiving=*/true);
        changed = true;
      }
    }
    log_health();
    if (changed || now - last_publish_ >= 1'000'000'000) publish();
  }

  // Tells the server, over every other uplink that has a session, that this uplink is
  // down: its return traffic moves at once instead of after its own probes fail.
  void announce_down(const Uplink& down) {
    const std::uint8_t body[2] = {static_cast<std::uint8_t>(dp::ControlKind::UplinkDown),
                                  static_cast<std::uint8_t>(down.id)};
    for (Uplink& o : active_uplinks())
      if (&o != &down && o.session && prober_.state(o.session.get()) != dp::HealthState::Down)
        rt_.send_transport(*o.session, dp::PacketType::Control, o.session->peer_copy(), body);
  }

  void on_link(int ifindex, bool up) {
    for (Uplink& u : active_uplinks()) {
      if (u.ifindex != ifindex) continue;
      if (up && !u.session) {  // back: handshake without waiting, at the normal pace
        u.next_try = Clock::now();
        u.retries = 0;
      }
      if (u.session && prober_.on_link(u.session.get(), up)) {
        log_health();
        publish();
      }
    }
  }

  void log_health() {
    for (Uplink& u : active_uplinks()) {
      const dp::HealthState st = u.session ? prober_.state(u.session.get()) : dp::HealthState::Down;
      if (st == u.logged) continue;
      if (st == dp::HealthState::Unknown) {  // a new session: its first probe answer tells more
        u.logged = st;
        continue;
      }
      const dp::UplinkView v = u.session ? prober_.view(u.session.get()) : dp::UplinkView{};
      spdlog::info("uplink {} ({}): {} -> {} (srtt {:.2f} ms, loss {:.0f} %)", u.id, u.name,
                   dp::health_name(u.logged), dp::health_name(st), v.srtt_ms, v.loss * 100);
      u.logged = st;
    }
  }

  void send_initiation(Uplink& u, Clock::time_point now) {
    dp::InitPayload p;
    p.uplink = static_cast<std::uint8_t>(u.id);
    p.sender_index = static_cast<std::uint32_t>(crypto::random_u64()) | 1;  // never 0, which marks an initiation
    p.inner_ipv4_be = address_.addr_be;  // 0 until the server assigned one
    // Timestamps grow within a run even if the clock steps back (NTP): the server refuses
    // one not newer than the last it took from this client, so a step back would stall rekeys.
    last_timestamp_ = std::max(last_timestamp_ + 1, static_cast<std::uint64_t>(io::realtime_ns()));
    p.timestamp_ns = last_timestamp_;
    p.client_id = group_->client_id;
    p.ciphers = (opt_.aes256gcm ? dp::kOfferAes256Gcm : 0) | dp::kOfferChecksumPartial;
    if (opt_.bench.enabled)
      p.mode = static_cast<std::uint8_t>(
          dp::kModeBenchmark |
          (opt_.bench.download ? dp::kModeDownload | (opt_.bench.streams - 1) << dp::kModeStreamsShift : 0));
    const bool cookie = u.cookie && now < u.cookie_until;
    u.hs.emplace(opt_.key.server_key, p, opt_.client_key ? &*opt_.client_key : nullptr,
                 cookie ? &*u.cookie : nullptr);
    rt_.expect_handshake(u.id, p.sender_index);  // its answers may pass the workers
    u.hs_sent = now;
    u.next_try = now + retry_wait(u);
    const io::Endpoint& to = u.tcp ? u.relay : opt_.endpoints[u.attempt++ % opt_.endpoints.size()];
    if (!rt_.uplink(u.id).send_to(u.hs->initiation().data(), u.hs->initiation().size(), to)) {
      // Typically no route to this address through this uplink: try the next one soon.
      spdlog::debug("uplink {} ({}): sending the handshake to {} failed: {}", u.id, u.name, to.to_string(),
                    std::strerror(errno));
      u.next_try = now + std::chrono::milliseconds(50);
    }
  }

  // retry_delay between handshakes. An uplink without a session whose last max_retries
  // handshakes went unanswered waits twice as long each time after, up to kMaxRetryWait
  // (max_retries 0: never slows down); an answer or its interface coming up starts over.
  std::chrono::milliseconds retry_wait(Uplink& u) {
    const std::chrono::milliseconds base(opt_.retry_delay_ms);
    if (u.session) return base;  // a rekey: the session carries on meanwhile
    if (opt_.max_retries <= 0 || ++u.retries <= opt_.max_retries) return base;
    if (u.retries == opt_.max_retries + 1)
      spdlog::warn("uplink {} ({}): no answer to {} handshakes in a row; trying less often, up to every {} s",
                   u.id, u.name, opt_.max_retries, kMaxRetryWait.count() / 1000);
    const int doublings = std::min(u.retries - opt_.max_retries, 16);
    return std::max(base, std::min(std::chrono::milliseconds(base.count() << doublings), kMaxRetryWait));
  }
  static constexpr std::chrono::milliseconds kMaxRetryWait{30'000};

  // tcp_fallback: an uplink whose UDP handshakes went unanswered for tcp_fallback_after
  // tries TCP to the server's port; one whose TCP connection fails, or that is not
  // answered over TCP for twice as long, goes back to UDP (and may come back to TCP).
  void choose_transport(Uplink& u, Clock::time_point now) {
    if (!relay_) return;
    if (u.unanswered_since == Clock::time_point{}) u.unanswered_since = now;
    const auto after = std::chrono::milliseconds(opt_.tcp_fallback_after_ms);
    if (u.tcp) {
      const bool failed = relay_->state(u.id) == io::TcpRelay::State::Failed;
      if (!failed && now - u.unanswered_since < 2 * after) return;
      last_tcp_error_ = failed ? relay_->error(u.id) : "no answer";
      spdlog::warn("uplink {} ({}): {} over TCP to {}; trying UDP again", u.id, u.name, last_tcp_error_,
                   u.server.to_string());
      use_udp(u, now);
      return;
    }
    if (now - u.unanswered_since < after) return;
    u.server = opt_.endpoints[u.tcp_tries++ % opt_.endpoints.size()];
    try {
      u.relay = relay_->connect(u.id, u.server, u.ifindex != 0 ? u.name : std::string(),
                                opt_.tun.full_tunnel ? kUplinkMark : 0, relay_side(u));
    } catch (const std::exception& e) {
      spdlog::warn("uplink {} ({}): cannot fall back to TCP: {}", u.id, u.name, e.what());
      u.unanswered_since = now;
      return;
    }
    if (opt_.endpoints.front().family() == AF_INET6) u.relay = v4_mapped(u.relay);
    u.tcp = true;
    u.unanswered_since = now;
    u.hs.reset();
    spdlog::info("uplink {} ({}): no answer over UDP for {:.1f} s; trying TCP to {}", u.id, u.name,
                 opt_.tcp_fallback_after_ms / 1000.0, u.server.to_string());
  }

  void use_udp(Uplink& u, Clock::time_point now) {
    if (relay_) relay_->close(u.id);
    u.tcp = false;
    u.unanswered_since = now;
    u.hs.reset();
  }

  // Where the relay's UDP socket sits: an IPv4 address the uplink's sockets reach, so on
  // its own interface for a pinned uplink (a pinned socket reaches no loopback), with
  // the uplink sockets' port (the relay hears only them).
  io::Endpoint relay_side(const Uplink& u) const {
    const std::uint16_t port = rt_.uplink(u.id).local().port();
    if (u.ifindex == 0) return io::Endpoint::loopback(AF_INET, port);
    for (const io::Endpoint& a : addresses_of(u.ifindex))
      if (a.family() == AF_INET)
        return io::Endpoint::from_ipv4(reinterpret_cast<const sockaddr_in*>(&a.addr)->sin_addr.s_addr, port);
    throw std::runtime_error(u.name + " has no IPv4 address");
  }

  static io::Endpoint v4_mapped(const io::Endpoint& e) {
    std::uint8_t a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(a + 12, &reinterpret_cast<const sockaddr_in*>(&e.addr)->sin_addr, 4);
    return io::Endpoint::from_ipv6(a, e.port());
  }

  // --auto-discover: every interface that is up with carrier and an IPv4 address, except
  // loopback, point-to-point links (tunnels), TUN/TAP devices (ours and others) becomes an
  // uplink; one that vanishes is removed, one that goes down or loses its address is Down.
  void rescan() {
    rescan_at_ = Clock::now() + std::chrono::seconds(1);
    std::vector<std::string> names;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) == 0) {
      for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
        const unsigned f = i->ifa_flags;
        if (!(f & IFF_UP) || !(f & IFF_RUNNING) || (f & IFF_LOOPBACK) || (f & IFF_POINTOPOINT)) continue;
        const std::string n = i->ifa_name;
        if (n == rt_.tun_name() || access(("/sys/class/net/" + n + "/tun_flags").c_str(), F_OK) == 0) continue;
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
      }
      freeifaddrs(list);
    }
    for (Uplink& u : active_uplinks()) {
      if (!u.discovered) continue;
      const bool present = std::find(names.begin(), names.end(), u.name) != names.end();
      const int idx = static_cast<int>(if_nametoindex(u.name.c_str()));
      if (idx == 0 || idx != u.ifindex) {
        remove_uplink(u);  // the interface went away (or is another one by now)
      } else if (u.session && prober_.on_link(u.session.get(), present)) {
        log_health();
        publish();
      }
    }
    for (const std::string& n : names) {
      bool known = false;
      for (Uplink& u : active_uplinks()) known |= u.name == n;
      if (!known) add_uplink(n);
    }
  }

  void add_uplink(const std::string& name) {
    Uplink* free = nullptr;
    for (Uplink& u : ups_)
      if (!u.active && rt_.uplink(u.id).fd() < 0) {
        free = &u;
        break;
      }
    if (free == nullptr) return;  // all 16 ids in use
    if (active_uplinks().size() >= opt_.max_uplinks) {
      if (!warned_max_) spdlog::info("not adding {} as an uplink: max_uplinks ({}) reached", name, opt_.max_uplinks);
      warned_max_ = true;
      return;
    }
    try {
      rt_.add_uplink(free->id, uplink_sockets(opt_, rt_.workers(), name));
    } catch (const std::exception& e) {
      spdlog::warn("cannot use {} as an uplink: {}", name, e.what());
      return;
    }
    Uplink& u = *free;
    u.active = true;
    u.discovered = true;
    u.name = name;
    u.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
    u.attempt = 0;
    u.retries = 0;
    u.hs.reset();
    u.logged = dp::HealthState::Down;
    u.next_try = Clock::now();
    spdlog::info("uplink {} ({}) added", u.id, u.name);
  }

  void remove_uplink(Uplink& u) {
    spdlog::info("uplink {} ({}) removed: the interface is gone", u.id, u.name);
    drop_session(u);
    use_udp(u, Clock::now());
    u.active = false;
    u.hs.reset();
    rt_.release_uplink(u.id);  // the socket closes when the workers let go of it
  }

  [[noreturn]] void fail() {
    if (active_uplinks().empty())
      throw std::runtime_error("no uplink: no interface is up with an IPv4 address (--auto-discover)");
    std::string where;
    for (const auto& e : opt_.endpoints) where += (where.empty() ? "" : ", ") + e.to_string();
    const std::string secs = std::to_string(opt_.handshake_timeout_ms / 1000.0).substr(0, 4);
    if (last_error_) throw std::runtime_error("handshake with " + where + " failed: " + error_text(*last_error_));
    throw std::runtime_error("handshake with " + where + " failed: no valid answer within " + secs +
                             " s (server down, unreachable, or holding a different key)" +
                             (last_tcp_error_.empty() ? "" : "; over TCP: " + last_tcp_error_));
  }

  std::string error_text(dp::ErrorCode code) const {
    switch (code) {
      case dp::ErrorCode::HandshakeFailed:
        return "the server could not decrypt it (this AuthKey does not hold the server's key)";
      case dp::ErrorCode::AddressRejected:
        return address_.addr_be == 0 ? "the server has no free address in its pool"
                                     : "the server refused tunnel address " + address_.to_string();
      case dp::ErrorCode::ServerFull: return "the server is full (its max_connections)";
      case dp::ErrorCode::BadVersion: return "protocol version mismatch";
      case dp::ErrorCode::ClientKeyRequired:
        return "the server only admits authorised clients: give this client its key (--client-key FILE)";
      case dp::ErrorCode::StaleTimestamp:
        return "the server refused the initiation's timestamp: this machine's clock differs from the server's by more "
               "than its max_clock_skew, or went back since an earlier run with this key (check NTP)";
      case dp::ErrorCode::BenchmarkRefused:
        return "the server does not accept benchmark sessions (start it with --allow-benchmark)";
      case dp::ErrorCode::ClientKeyRejected:
        return opt_.client_key ? "the server does not accept this client key (not in its authorized_clients, revoked, or the "
                                 "server takes no client keys)"
                               : "the server refused the handshake";
    }
    return "error " + std::to_string(static_cast<int>(code));
  }

  // NAT between this uplink and the server: the server saw another source port than the
  // socket's, or a source address that is none of the uplink interface's (of any
  // interface for an unbound uplink). A server that does not report (port 0) says nothing.
  bool behind_nat(const Uplink& u, const dp::ResponsePayload& r) const {
    if (r.observed_port == 0) return false;
    if (r.observed_port != rt_.uplink(u.id).local().port()) return true;
    const auto ours = addresses_of(u.ifindex);
    return !ours.empty() && std::none_of(ours.begin(), ours.end(),
                        [&](const io::Endpoint& a) { return address_digest(a) == r.observed_digest; });
  }

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
  void on_new_server_epoch(const Uplink& except) {
    spdlog::info("the server holds no earlier state for this client (restarted, or dropped us): "
                 "handshaking every uplink afresh");
    // Every session points at the old Group (previous ones too): none may outlive it.
    for (Uplink& o : active_uplinks()) {
      if (&o == &except) continue;
      retire(std::move(o.previous));
      if (o.session) drop_session(o);
    }
    dp::Group* old = group_.release();
    group_ = std::make_unique<dp::Group>();
    group_->client_id = old->client_id;
    group_->sink = opt_.bench.enabled;
    rt_.qsbr().retire([old] { delete old; });
  }

  void install(Uplink& u, ClientHandshake::Established& est, const io::Endpoint& from) {
    if (server_epoch_ != 0 && est.response.group_epoch != server_epoch_) {
      retire(std::move(u.previous));
      retire(std::move(u.session));
      on_new_server_epoch(u);
    }
    server_epoch_ = est.response.group_epoch;
    server_ip_ = est.response.server_ipv4_be;
    auto s = std::make_unique<dp::Session>();
    s->local_index = u.hs->sender_index();
    s->remote_index = est.response.sender_index;
    s->uplink = static_cast<std::uint8_t>(u.id);
    s->socket = static_cast<std::uint8_t>(u.id);
    s->group = group_.get();
    const auto cipher = est.response.cipher == 1 ? crypto::Cipher::Aes256Gcm : crypto::Cipher::ChaCha20Poly1305;
    s->tx_key = crypto::TransportKey(std::move(est.keys.send), cipher);
    s->rx_key = crypto::TransportKey(std::move(est.keys.recv), cipher);
    s->peer_takes_partial = est.response.checksum_partial;
    s->set_peer(from);
    s->last_rx_ns.store(io::coarse_ns());
    s->confirmed.store(true, std::memory_order_relaxed);  // the response proved the server holds its key
    const bool nat = behind_nat(u, est.response);
    if (nat && !u.behind_nat)
      spdlog::info("uplink {} ({}) is behind NAT: the server saw another source address or port", u.id, u.name);
    u.behind_nat = nat;
    u.hs.reset();
    u.attempt = 0;
    u.retries = 0;
    u.unanswered_since = {};
    u.established = Clock::now();
    u.next_try = u.established;
    if (u.session) {  // a rekey: the path's measurements carry over; the old keys decrypt a while
      prober_.rekey(u.session.get(), s.get(), monotonic_ns());
      retire(std::move(u.previous));
      u.previous = std::move(u.session);
      u.previous_until = u.established + kGrace;
    } else {
      // The server sends nothing on a new session until it hears from us on it: the
      // first probe goes at once (this round), so its answers need not wait for data.
      prober_.add(s.get(), monotonic_ns(), 0);
    }
    u.session = std::move(s);
    publish();
  }

  static constexpr auto kGrace = std::chrono::seconds(10);
  // Servers change their cookie secret every 120 s and accept the one before.
  static constexpr auto kCookieLifetime = std::chrono::seconds(120);

  // keep_receiving: the session goes on decrypting for kGrace (as previous), so that what
  // the server still sends on it, until it learns the uplink went away, is delivered
  // once the path is back rather than dropped as an unknown index.
  void drop_session(Uplink& u, bool keep_receiving = false) {
    if (keep_receiving && u.session) {
      prober_.remove(u.session.get());
      retire(std::move(u.previous));
      u.previous = std::move(u.session);
      u.previous_until = Clock::now() + kGrace;
    } else {
      retire(std::move(u.previous));
      retire(std::move(u.session));
    }
    u.next_try = Clock::now();
    u.unanswered_since = {};
    u.retries = 0;
    publish();
  }

  void retire(std::unique_ptr<dp::Session> s) {
    if (!s) return;
    prober_.remove(s.get());
    dp::Session* old = s.release();
    rt_.qsbr().retire([old] { delete old; });
  }

  // One route for the server: every uplink with a session, in the configured strategy.
  void publish() {
    auto snap = std::make_unique<dp::Snapshot>();
    std::array<dp::Session*, dp::kMaxUplinks> sessions{};
    std::array<dp::UplinkView, dp::kMaxUplinks> views{};
    for (Uplink& u : active_uplinks()) {
      // A previous session decrypts whether or not the uplink has a current one.
      if (u.previous) snap->by_index.emplace(u.previous->local_index, u.previous.get());
      if (!u.session) continue;
      sessions[u.id] = u.session.get();
      views[u.id] = prober_.view(u.session.get());
      views[u.id].weight = u.id < weights_.size() ? weights_[u.id] : 1.0;
      views[u.id].behind_nat = u.behind_nat;
      snap->by_index.emplace(u.session->local_index, u.session.get());
    }
    auto route = dp::make_route(group_.get(), sessions, views, sched_, ++version_);
    if (bench_sending_ && address_.addr_be != 0) {  // a benchmark upload: the workers generate it
      route->gen = {opt_.bench.streams, address_.addr_be, server_ip_, static_cast<std::uint16_t>(opt_.tun.mtu)};
      snap->generate.push_back(route.get());
    }
    snap->default_route = route.get();
    snap->routes.push_back(std::move(route));
    const bool generate = !snap->generate.empty();
    rt_.snapshots().publish(std::move(snap));
    if (generate) rt_.wake_workers();  // asleep, a worker would not notice until a packet came
    last_publish_ = monotonic_ns();
  }

  const ClientOptions& opt_;
  Runtime& rt_;
  StatusServer& ops_;
  const KernelNat* nat_;  // --gateway, for its entry count
  std::uint64_t handshakes_ = 0;
  std::uint64_t last_timestamp_ = 0;  // the newest initiation timestamp sent (send_initiation)
  io::Ipv4Prefix address_ = opt_.tun.address;  // our tunnel address (0 until assigned)
  dp::SchedulerConfig sched_ = opt_.sched;  // SIGHUP may change these two
  std::vector<double> weights_ = opt_.weights;
  bool warned_max_ = false;
  Prober prober_;
  std::int64_t last_publish_ = 0;
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

}  // namespace

std::vector<io::Endpoint> authkey_endpoints(const crypto::AuthKey& key) {
  std::vector<io::Endpoint> out;
  for (const auto& a : key.addresses) {
    if (a.v6) {
      out.push_back(io::Endpoint::from_ipv6(a.ip.data(), a.port));
    } else {
      std::uint32_t v4;
      std::memcpy(&v4, a.ip.data(), 4);
      out.push_back(io::Endpoint::from_ipv4(v4, a.port));
    }
  }
  return out;
}

namespace {
// What run_client and run_benchmark check the same way.
void check_uplink_options(const ClientOptions& opt) {
  if (opt.endpoints.empty())
    throw std::runtime_error("the AuthKey holds no server address; give one with --endpoint IP:PORT");
  if (opt.interfaces.size() > static_cast<std::size_t>(opt.max_uplinks))
    throw std::runtime_error("at most " + std::to_string(opt.max_uplinks) + " uplinks (-i; max_uplinks)");
  if (opt.auto_discover && !opt.interfaces.empty())
    throw std::runtime_error("use either -i or --auto-discover, not both");
}

// The sockets of the uplinks known at start (by -i, or the one default uplink), one
// per worker each.
std::vector<std::vector<io::UdpSocket>> start_uplinks(const ClientOptions& opt, unsigned workers) {
  std::vector<std::vector<io::UdpSocket>> socks;
  if (opt.interfaces.empty() && !opt.auto_discover) socks.push_back(uplink_sockets(opt, workers, {}));
  for (const auto& i : opt.interfaces) socks.push_back(uplink_sockets(opt, workers, i));
  return socks;
}
}  // namespace

int run_client(const ClientOptions& opt) {
  if (!io::has_net_admin())
    throw std::runtime_error("triglav tun needs root (CAP_NET_ADMIN) to create its TUN device");
  check_uplink_options(opt);
  if (!opt.user.empty()) io::lookup_user(opt.user);  // a wrong name before anything is set up
  TunSetup tun = opt.tun;
  tun.workers = worker_count(opt.tun.workers);
  std::vector<std::vector<io::UdpSocket>> socks = start_uplinks(opt, tun.workers);
  const std::size_t n = socks.size();
  // --dns: the servers are reached through the tunnel (in split mode by a route each).
  if (!tun.full_tunnel)
    for (const auto& d : opt.dns) {
      const io::Ipv4Prefix host{d.addr_be, 32};
      const bool covered = (tun.address.addr_be != 0 &&
                            io::Ipv4Prefix{d.addr_be, tun.address.len}.network_be() == tun.address.network_be()) ||
                           std::any_of(tun.routes.begin(), tun.routes.end(), [&](const io::Ipv4Prefix& r) {
                             return io::Ipv4Prefix{d.addr_be, r.len}.network_be() == r.network_be();
                           });
      if (!covered) tun.routes.push_back(host);
    }
  ResolverOverride::restore_leftover(tun.name);  // a previous run that died with --dns
  Runtime rt(std::move(socks), tun);
  std::optional<ResolverOverride> resolver;
  if (!opt.dns.empty()) resolver.emplace(opt.dns, tun.name);
  std::optional<KernelNat> nat;
  if (opt.gateway)
    nat.emplace(opt.gateway_nat ? KernelNat::Kind::Gateway : KernelNat::Kind::Routed, tun.name, tun.address, opt.nat);
  StatusServer ops(opt.status);  // after the TUN: a taken name is the error to report first
  Client c(opt, rt, n, ops, nat ? &*nat : nullptr);
  if (!opt.user.empty()) drop_root(opt.user, {{ops.socket_path(), opt.pid_file}, resolver ? tun.name : ""});
  if (opt.on_ready) opt.on_ready("");
  return c.run();
}

int run_benchmark(const ClientOptions& opt) {
  check_uplink_options(opt);
  if (opt.bench.streams < 1 || opt.bench.streams > dp::kMaxBenchStreams)
    throw std::runtime_error("--streams: 1 to " + std::to_string(dp::kMaxBenchStreams));
  TunSetup tun = opt.tun;
  tun.none = true;  // nothing to set up: no root needed
  tun.workers = worker_count(opt.tun.workers);
  std::vector<std::vector<io::UdpSocket>> socks = start_uplinks(opt, tun.workers);
  const std::size_t n = socks.size();
  Runtime rt(std::move(socks), tun);
  StatusServer ops(StatusServerConfig{});  // no control socket, no metrics
  Client c(opt, rt, n, ops, nullptr);
  return c.run();
}

}  // namespace triglav::ctl
