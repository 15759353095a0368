#include "control/client.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "control/handshake.h"
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

class Client {
 public:
  // Keepalives hold NAT bindings open and prove the session alive; after three and a
  // half intervals of silence the client handshakes again.
  Client(const ClientOptions& opt, Runtime& rt)
      : opt_(opt),
        rt_(rt),
        keepalive_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.keepalive_s))),
        dead_after_(keepalive_ * 7 / 2) {}

  int run() {
    rt_.start_workers();
    bool up = connect(true);  // false: a signal arrived during the first handshake
    auto next_ping = Clock::now() + keepalive_;
    while (up) {
      const auto w = rt_.wait(250);
      if (w.dump) log_counters();
      bool closed = false;
      dp::ControlMessage m;
      while (rt_.pop(m))
        if (m.kind == dp::ControlMessage::Kind::Close) closed = true;
      if (w.stop) break;
      const auto now = Clock::now();
      if (now >= next_ping) {  // keepalive: the server answers with a Pong
        next_ping = now + keepalive_;
        send_ping();
      }
      if (closed || silent_for() > dead_after_) {
        if (closed)
          spdlog::warn("the server closed the session; handshaking again");
        else
          spdlog::warn("nothing from the server for {:.1f} s; handshaking again",
                       std::chrono::duration<double>(dead_after_).count());
        up = connect(false);
        next_ping = Clock::now() + keepalive_;
      }
    }
    rt_.stop_workers();
    if (session_) rt_.send_transport(*session_, dp::PacketType::Close, server_);
    log_counters();
    return 0;
  }

 private:
  void log_counters() { spdlog::info("counters: {}", rt_.totals().format()); }

  // Control-thread Ping with an 8-byte body (a send timestamp the Pong echoes).
  void send_ping() {
    if (!session_) return;
    std::uint8_t body[8];
    const auto t = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
    dp::store_le64(body, t);
    rt_.send_transport(*session_, dp::PacketType::Ping, server_, body);
  }

  std::chrono::nanoseconds silent_for() const {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    const std::int64_t now = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    return std::chrono::nanoseconds(now - session_->last_rx_ns.load(std::memory_order_relaxed));
  }

  // Handshakes until it succeeds. first: give up after the handshake timeout (throws);
  // otherwise retry until stopped. Returns false if a signal asked us to stop.
  bool connect(bool first) {
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::milliseconds(opt_.handshake_timeout_ms);
    std::optional<dp::ErrorCode> server_error;
    for (unsigned attempt = 0;; ++attempt) {
      if (first && Clock::now() >= deadline) fail(server_error);
      server_ = opt_.endpoints[attempt % opt_.endpoints.size()];
      dp::InitPayload p;
      p.uplink = 0;
      crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&p.sender_index), 4});
      p.sender_index |= 1;  // never 0, which marks an initiation
      p.inner_ipv4_be = opt_.tun.address.addr_be;
      p.timestamp_ns = realtime_ns();
      ClientHandshake hs(opt_.key.server_key, p);
      const auto sent = Clock::now();
      if (!rt_.uplink(0).send_to(hs.initiation().data(), hs.initiation().size(), server_))
        spdlog::debug("sending the handshake to {} failed: {}", server_.to_string(), std::strerror(errno));
      const auto retry_at = sent + kRetryInterval;
      while (Clock::now() < retry_at && !(first && Clock::now() >= deadline)) {
        const auto w = rt_.wait(50);
        if (w.dump) log_counters();
        if (w.stop) return false;
        dp::ControlMessage m;
        while (rt_.pop(m)) {
          if (m.kind != dp::ControlMessage::Kind::Packet) continue;
          dp::Header h;
          if (dp::decode_header({m.data.data(), m.len}, h) != dp::HeaderError::Ok) continue;
          if (h.type == dp::PacketType::Error && m.len == dp::kErrorLen &&
              h.receiver == hs.sender_index()) {
            // Unauthenticated: remember it for the final message, keep trying.
            server_error = static_cast<dp::ErrorCode>(h.aux);
            continue;
          }
          auto est = hs.finish({m.data.data(), m.len});
          if (!est) {
            spdlog::debug("ignored a {}-byte handshake packet from {}", m.len, m.from.to_string());
            continue;
          }
          install(hs.sender_index(), *est, m.from);
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
          spdlog::info("handshake complete with {} in {:.3f} ms; tunnel {} {} (server {})",
                       m.from.to_string(), ms, rt_.tun().name(), opt_.tun.address.to_string(),
                       io::ipv4_to_string(est->response.server_ipv4_be));
          return true;
        }
      }
    }
  }

  [[noreturn]] void fail(std::optional<dp::ErrorCode> err) {
    std::string where;
    for (const auto& e : opt_.endpoints) where += (where.empty() ? "" : ", ") + e.to_string();
    const std::string secs = std::to_string(opt_.handshake_timeout_ms / 1000.0).substr(0, 4);
    if (err == dp::ErrorCode::HandshakeFailed)
      throw std::runtime_error("handshake with " + where + " failed: the server could not decrypt it "
                               "(this AuthKey does not hold the server's key)");
    if (err == dp::ErrorCode::AddressRejected)
      throw std::runtime_error("handshake with " + where + " failed: the server refused tunnel address " +
                               opt_.tun.address.to_string());
    if (err == dp::ErrorCode::BadVersion)
      throw std::runtime_error("handshake with " + where + " failed: protocol version mismatch");
    throw std::runtime_error("handshake with " + where + " failed: no valid answer within " + secs +
                             " s (server down, unreachable, or holding a different key)");
  }

  void install(std::uint32_t local_index, ClientHandshake::Established& est, const io::Endpoint& from) {
    auto s = std::make_unique<dp::Session>();
    s->local_index = local_index;
    s->remote_index = est.response.sender_index;
    s->uplink = 0;
    s->tx_key = std::move(est.keys.send);
    s->rx_key = std::move(est.keys.recv);
    s->peer = from;
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    s->last_rx_ns.store(std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
    server_ = from;
    auto snap = std::make_unique<dp::Snapshot>();
    snap->by_index.emplace(local_index, s.get());
    snap->default_session = s.get();
    rt_.snapshots().publish(std::move(snap));
    if (session_) {
      dp::Session* old = session_.release();
      rt_.qsbr().retire([old] { delete old; });
    }
    session_ = std::move(s);
  }

  const ClientOptions& opt_;
  Runtime& rt_;
  Clock::duration keepalive_;
  Clock::duration dead_after_;
  std::unique_ptr<dp::Session> session_;
  io::Endpoint server_;
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
  const bool v6 = opt.endpoints.front().family() == AF_INET6;
  std::vector<io::UdpSocket> socks;
  if (v6) {
    const std::uint8_t any[16] = {};
    socks.push_back(io::UdpSocket::bind(io::Endpoint::from_ipv6(any, 0)));
  } else {
    socks.push_back(io::UdpSocket::bind(io::Endpoint::from_ipv4(0, 0)));
  }
  Runtime rt(std::move(socks), opt.tun);
  Client c(opt, rt);
  return c.run();
}

}  // namespace triglav::ctl
