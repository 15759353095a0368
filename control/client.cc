#include "control/client.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>
#include <stdexcept>

#include "control/handshake.h"
#include "crypto/aead.h"
#include "io/system.h"
#include "io/tun_device.h"

namespace triglav::ctl {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRetryInterval = std::chrono::milliseconds(1000);


std::uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
}

// One uplink of the client: its socket (Runtime::uplink(id)), its handshake in flight or
// its session, and its keepalive clock.
struct Uplink {
  unsigned id = 0;
  std::string name;  // interface, or "default"
  std::optional<ClientHandshake> hs;
  Clock::time_point hs_sent{};
  Clock::time_point next_try{};
  unsigned attempt = 0;
  std::unique_ptr<dp::Session> session;
  Clock::time_point next_ping{};
};

class Client {
 public:
  // Keepalives hold NAT bindings open and prove a session alive; after three and a half
  // intervals of silence that uplink handshakes again.
  Client(const ClientOptions& opt, Runtime& rt, std::size_t uplinks)
      : opt_(opt),
        rt_(rt),
        keepalive_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.keepalive_s))),
        dead_after_(keepalive_ * 7 / 2),
        ups_(uplinks) {
    group_.client_id = random_u64();
    for (unsigned i = 0; i < ups_.size(); ++i) {
      ups_[i].id = i;
      ups_[i].name = i < opt.interfaces.size() ? opt.interfaces[i] : "default";
    }
  }

  int run() {
    rt_.start_workers();
    const auto deadline = Clock::now() + std::chrono::milliseconds(opt_.handshake_timeout_ms);
    bool ever_up = false;
    for (;;) {
      const auto w = rt_.wait(50);
      if (w.dump) log_counters();
      dp::ControlMessage m;
      while (rt_.pop(m)) on_message(m);
      if (w.stop) break;
      const auto now = Clock::now();
      for (Uplink& u : ups_) {
        ever_up |= u.session != nullptr;
        tick(u, now);
      }
      if (!ever_up && now >= deadline) fail();
    }
    rt_.stop_workers();
    for (Uplink& u : ups_)
      if (u.session) rt_.send_transport(*u.session, dp::PacketType::Close, u.session->peer);
    log_counters();
    return 0;
  }

 private:
  static std::uint64_t random_u64() {
    std::uint64_t v;
    crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&v), sizeof v});
    return v;
  }

  void log_counters() {
    std::string ups;
    for (const Uplink& u : ups_) ups += " " + u.name + "=" + (u.session ? "up" : "down");
    spdlog::info("uplinks:{} counters: {}", ups, rt_.totals().format());
  }

  void on_message(const dp::ControlMessage& m) {
    if (m.kind == dp::ControlMessage::Kind::Close) {
      for (Uplink& u : ups_) {
        if (u.session && u.session->local_index == m.session_index) {
          spdlog::warn("the server closed the session on uplink {} ({}); handshaking again", u.id, u.name);
          drop_session(u);
        }
      }
      return;
    }
    dp::Header h;
    if (dp::decode_header({m.data.data(), m.len}, h) != dp::HeaderError::Ok) return;
    for (Uplink& u : ups_) {
      if (!u.hs || h.receiver != u.hs->sender_index()) continue;
      if (h.type == dp::PacketType::Error && m.len == dp::kErrorLen) {
        // Unauthenticated: remembered to explain a failure, nothing more.
        last_error_ = static_cast<dp::ErrorCode>(h.aux);
        return;
      }
      auto est = u.hs->finish({m.data.data(), m.len});
      if (!est) {
        spdlog::debug("ignored a {}-byte handshake packet from {}", m.len, m.from.to_string());
        return;
      }
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - u.hs_sent).count();
      install(u, *est, m.from);
      spdlog::info("handshake complete with {} in {:.3f} ms; tunnel {} {} (server {}) on uplink {} ({})",
                   m.from.to_string(), ms, rt_.tun().name(), opt_.tun.address.to_string(),
                   io::ipv4_to_string(est->response.server_ipv4_be), u.id, u.name);
      return;
    }
  }

  // Per-uplink timers: (re)send the initiation until a session exists; keepalives and
  // the silence check once it does.
  void tick(Uplink& u, Clock::time_point now) {
    if (!u.session) {
      if (now >= u.next_try) send_initiation(u, now);
      return;
    }
    if (now >= u.next_ping) {
      u.next_ping = now + keepalive_;
      std::uint8_t body[8];
      dp::store_le64(body, static_cast<std::uint64_t>(now.time_since_epoch().count()));
      rt_.send_transport(*u.session, dp::PacketType::Ping, u.session->peer, body);
    }
    if (silent_for(*u.session) > dead_after_) {
      spdlog::warn("nothing from the server on uplink {} ({}) for {:.1f} s; handshaking again", u.id, u.name,
                   std::chrono::duration<double>(dead_after_).count());
      drop_session(u);
    }
  }

  void send_initiation(Uplink& u, Clock::time_point now) {
    dp::InitPayload p;
    p.uplink = static_cast<std::uint8_t>(u.id);
    p.sender_index = static_cast<std::uint32_t>(random_u64()) | 1;  // never 0, which marks an initiation
    p.inner_ipv4_be = opt_.tun.address.addr_be;
    p.timestamp_ns = realtime_ns();
    p.client_id = group_.client_id;
    u.hs.emplace(opt_.key.server_key, p);
    u.hs_sent = now;
    u.next_try = now + kRetryInterval;
    const io::Endpoint& to = opt_.endpoints[u.attempt++ % opt_.endpoints.size()];
    if (!rt_.uplink(u.id).send_to(u.hs->initiation().data(), u.hs->initiation().size(), to)) {
      // Typically no route to this address through this uplink: try the next one soon.
      spdlog::debug("uplink {} ({}): sending the handshake to {} failed: {}", u.id, u.name, to.to_string(),
                    std::strerror(errno));
      u.next_try = now + std::chrono::milliseconds(50);
    }
  }

  [[noreturn]] void fail() {
    std::string where;
    for (const auto& e : opt_.endpoints) where += (where.empty() ? "" : ", ") + e.to_string();
    const std::string secs = std::to_string(opt_.handshake_timeout_ms / 1000.0).substr(0, 4);
    if (last_error_ == dp::ErrorCode::HandshakeFailed)
      throw std::runtime_error("handshake with " + where + " failed: the server could not decrypt it "
                               "(this AuthKey does not hold the server's key)");
    if (last_error_ == dp::ErrorCode::AddressRejected)
      throw std::runtime_error("handshake with " + where + " failed: the server refused tunnel address " +
                               opt_.tun.address.to_string());
    if (last_error_ == dp::ErrorCode::BadVersion)
      throw std::runtime_error("handshake with " + where + " failed: protocol version mismatch");
    throw std::runtime_error("handshake with " + where + " failed: no valid answer within " + secs +
                             " s (server down, unreachable, or holding a different key)");
  }

  static std::chrono::nanoseconds silent_for(const dp::Session& s) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    const std::int64_t now = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    return std::chrono::nanoseconds(now - s.last_rx_ns.load(std::memory_order_relaxed));
  }

  void install(Uplink& u, ClientHandshake::Established& est, const io::Endpoint& from) {
    auto s = std::make_unique<dp::Session>();
    s->local_index = u.hs->sender_index();
    s->remote_index = est.response.sender_index;
    s->uplink = static_cast<std::uint8_t>(u.id);
    s->group = &group_;
    s->tx_key = std::move(est.keys.send);
    s->rx_key = std::move(est.keys.recv);
    s->peer = from;
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    s->last_rx_ns.store(std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
    u.hs.reset();
    u.attempt = 0;
    u.next_ping = Clock::now() + keepalive_;
    retire(std::move(u.session));
    u.session = std::move(s);
    publish();
  }

  void drop_session(Uplink& u) {
    retire(std::move(u.session));
    u.next_try = Clock::now();
    publish();
  }

  void retire(std::unique_ptr<dp::Session> s) {
    if (!s) return;
    dp::Session* old = s.release();
    rt_.qsbr().retire([old] { delete old; });
  }

  // One route for the server: every uplink with a session, in the configured strategy.
  void publish() {
    auto snap = std::make_unique<dp::Snapshot>();
    std::array<dp::Session*, dp::kMaxUplinks> sessions{};
    std::array<dp::UplinkView, dp::kMaxUplinks> views{};
    for (const Uplink& u : ups_) {
      if (!u.session) continue;
      sessions[u.id] = u.session.get();
      views[u.id].weight = u.id < opt_.weights.size() ? opt_.weights[u.id] : 1.0;
      snap->by_index.emplace(u.session->local_index, u.session.get());
    }
    auto route = dp::make_route(&group_, sessions, views, opt_.sched, ++version_);
    snap->default_route = route.get();
    snap->routes.push_back(std::move(route));
    rt_.snapshots().publish(std::move(snap));
  }

  const ClientOptions& opt_;
  Runtime& rt_;
  Clock::duration keepalive_;
  Clock::duration dead_after_;
  dp::Group group_;
  std::vector<Uplink> ups_;
  std::optional<dp::ErrorCode> last_error_;
  std::uint64_t version_ = 0;
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

int run_client(const ClientOptions& opt) {
  if (!io::has_net_admin())
    throw std::runtime_error("triglav tun needs root (CAP_NET_ADMIN) to create its TUN device");
  if (opt.endpoints.empty())
    throw std::runtime_error("the AuthKey holds no server address; give one with --endpoint IP:PORT");
  if (opt.interfaces.size() > dp::kMaxUplinks)
    throw std::runtime_error("at most " + std::to_string(dp::kMaxUplinks) + " uplinks (-i)");
  const bool v6 = opt.endpoints.front().family() == AF_INET6;
  const std::uint8_t any6[16] = {};
  const io::Endpoint any = v6 ? io::Endpoint::from_ipv6(any6, 0) : io::Endpoint::from_ipv4(0, 0);
  // One socket per uplink, pinned to its interface so its packets really leave there.
  std::vector<io::UdpSocket> socks;
  if (opt.interfaces.empty()) socks.push_back(io::UdpSocket::bind(any));
  for (const auto& i : opt.interfaces) socks.push_back(io::UdpSocket::bind(any, i));
  const std::size_t n = socks.size();
  Runtime rt(std::move(socks), opt.tun);
  Client c(opt, rt, n);
  return c.run();
}

}  // namespace triglav::ctl
