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

#include "control/client_impl.h"
#include "dataplane/socket_filter.h"

namespace triglav::ctl {
namespace client_detail {

std::vector<io::UdpSocket> uplink_sockets(const ClientOptions& opt, unsigned workers, const std::string& device) {
  const std::uint8_t any6[16] = {};
  const bool v6 = opt.endpoints.front().family() == AF_INET6;
  std::vector<io::UdpSocket> s = io::UdpSocket::bind_group(
      v6 ? io::Endpoint::from_ipv6(any6, 0) : io::Endpoint::from_ipv4(0, 0), workers, device, opt.socket_buffers);
  // One sending worker of the server reaches one of ours on every uplink (the receiver
  // indices share their low byte): dp::steering_program.
  if (workers > 1) s.front().attach_reuseport_program(dp::steering_program(workers));
  if (opt.tun.full_tunnel)
    for (auto& one : s) one.set_mark(kUplinkMark);
  return s;
}

int Client::run() {
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
    if (rt_.turn(*this, ops_, 20)) {
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

bool Client::all_uplinks_measured() {
  for (Uplink& u : active_uplinks())
    if (!u.session || prober_.state(u.session.get()) == dp::HealthState::Unknown) return false;
  return true;
}

BenchSample Client::bench_sample(Clock::time_point t0) const {
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

Status Client::status() const {
  Status st = rt_.status_header("client", address_.addr_be != 0 ? address_.to_string() : "(not assigned yet)",
                                sched_.strategy);
  st.state = "connecting";
  st.authkey = crypto::encode_authkey(opt_.key);
  if (!opt_.endpoints.empty() && opt_.endpoints != authkey_endpoints(opt_.key)) st.endpoint = opt_.endpoints.front().to_string();
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
      us.behind_nat = u.behind_nat;
    }
    if (u.pmtu.result() != 0)  // the UDP payload and the IP and UDP headers
      us.path_mtu = static_cast<unsigned>(u.pmtu.result()) + (opt_.endpoints.front().family() == AF_INET6 ? 48 : 28);
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

void Client::reload() {
  if (auto r = reload_settings(opt_.reload, ops_)) {
    sched_ = r->sched;
    weights_ = std::move(r->weights);
    publish();
  }
}

void Client::log_counters() {
  std::string ups;
  for (Uplink& u : active_uplinks()) ups += " " + u.name + "=" + (u.session ? "up" : "down");
  spdlog::info("uplinks:{} counters: {}", ups, rt_.totals().format());
}

void Client::on_message(const dp::ControlMessage& m) {
  if (m.kind == dp::ControlMessage::Kind::UplinkReleased) {
    if (m.uplink < ups_.size() && !ups_[m.uplink].active) rt_.uplink_released(m.uplink);
    return;
  }
  if (m.kind == dp::ControlMessage::Kind::Pong) {
    if (m.len >= 8 && (dp::load_le64(m.data.data()) & kPathMtuTag) != 0)
      return path_mtu_answer(m.session_index, dp::load_le64(m.data.data()), monotonic_ns());
    // aggregate places each packet by the uplinks' latest RTT and rate: every answer
    // goes to the workers at once (one client: a publish is cheap).
    if (prober_.on_pong(m.session_index, {m.data.data(), m.len}, monotonic_ns()) ||
        sched_.strategy == dp::Strategy::Aggregate)
      publish();
    return;
  }
  if (m.kind == dp::ControlMessage::Kind::Control) {  // the server tells which uplinks it stripes over
    if (std::uint16_t mask = 0; dp::decode_stripe_uplinks(m.data.data(), m.len, mask))
      group_->peer_striped.store(mask, std::memory_order_relaxed);
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
    if (resolver_ != nullptr && resolver_->waiting()) (void)resolver_->point_at(est->response.server_ipv4_be);
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

void Client::probe(std::int64_t now) {
  bool changed = prober_.tick(now, [this](dp::Session& s, std::uint64_t body) {
    std::uint8_t b[8];
    dp::store_le64(b, body);
    rt_.send_transport(s, dp::PacketType::Ping, s.peer_copy(), b);
  });
  for (Uplink& u : active_uplinks()) search_path_mtu(u, now);
  update_path_limits(now);
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

void Client::search_path_mtu(Uplink& u, std::int64_t now) {
  // Over TCP any size goes; a benchmark has no TUN to clamp for.
  if (!u.session || u.tcp || opt_.bench.enabled) return;
  const dp::HealthState st = prober_.state(u.session.get());
  if (st != dp::HealthState::Healthy && st != dp::HealthState::Degraded) return;
  u.pmtu.start(path_mtu_need(), now);
  if (now - u.route_mtu_ns >= 1'000'000'000) {  // what ICMP told the kernel, once a second
    u.route_mtu_ns = now;
    const io::Endpoint peer = u.session->peer_copy();
    const int mtu = io::UdpSocket::route_mtu(peer, u.ifindex != 0 ? u.name : std::string(),
                                             opt_.tun.full_tunnel ? kUplinkMark : 0);
    const int headers = peer.family() == AF_INET6 ? 48 : 28;
    if (mtu > headers && u.pmtu.limit(static_cast<std::size_t>(mtu - headers), now)) path_mtu_changed(u);
  }
  // An answer takes a round trip and a queue: on a slow path more than the search's own wait.
  const dp::UplinkView v = prober_.view(u.session.get());
  const auto wait_ns = static_cast<std::int64_t>(std::max(0.0, v.srtt_ms) * 2e6) + 100'000'000;
  if (u.pmtu.tick(now, wait_ns)) path_mtu_changed(u);
  if (const unsigned lost = u.pmtu.take_lost()) prober_.excuse_lost(u.session.get(), lost);
  while (const std::size_t size = u.pmtu.due(now)) {
    const std::uint64_t body = kPathMtuTag | std::uint64_t{u.id} << 32 | size;
    (void)rt_.send_padded_ping(*u.session, u.session->peer_copy(), body, size);  // a failed send: as if lost
  }
}

void Client::path_mtu_answer(std::uint32_t session_index, std::uint64_t body, std::int64_t now) {
  const unsigned id = static_cast<unsigned>(body >> 32) & 0xffu;
  if (id >= ups_.size()) return;
  Uplink& u = ups_[id];
  const bool ours = (u.session && u.session->local_index == session_index) ||
                    (u.previous && u.previous->local_index == session_index);
  if (u.active && ours && u.pmtu.answered(body & 0xffffffffu, now)) path_mtu_changed(u);
}

void Client::path_mtu_changed(Uplink& u) {
  const std::size_t need = path_mtu_need(), got = u.pmtu.result();
  if (got == 0)
    spdlog::info("uplink {} ({}): path MTU unknown (no padded probe answered: the server may predate them)", u.id,
                 u.name);
  else if (got < need)
    spdlog::warn("uplink {} ({}): path MTU: datagrams of {} bytes arrive, the tunnel MTU needs {}; TCP is clamped to "
                 "fit, larger packets go on it in fragments (a --mtu of {} fits)",
                 u.id, u.name, got, need, got - dp::kMaxDataOverhead);
  else
    spdlog::debug("uplink {} ({}): path MTU carries the tunnel's {}-byte datagrams", u.id, u.name, need);
  update_path_limits(monotonic_ns());
}

void Client::update_path_limits(std::int64_t now) {
  const std::size_t need = path_mtu_need();
  std::size_t fit = 0;  // the largest inner packet every usable UDP uplink carries, where one carries less
  for (Uplink& u : ups_) {
    const std::size_t r = u.active && u.session && !u.tcp ? u.pmtu.result() : 0;
    const auto limit = static_cast<std::uint16_t>(r != 0 && r < need ? r : 0);  // 0: whole packets go
    group_->max_datagram[u.id].store(limit, std::memory_order_relaxed);
    if (r == 0) continue;
    // The server fragments what it sends here to fit, as told: when it changes and every
    // 30 s (a Control message may be lost, and a server restart forgets).
    if (limit != u.told_limit || now - u.told_ns >= 30'000'000'000) {
      std::uint8_t body[dp::kPathMtuLen];
      dp::encode_path_mtu(static_cast<std::uint8_t>(u.id), limit, body);
      if (rt_.send_transport(*u.session, dp::PacketType::Control, u.session->peer_copy(), body)) {
        u.told_limit = limit;
        u.told_ns = now;
      }
    }
    if (limit == 0 || prober_.state(u.session.get()) == dp::HealthState::Down) continue;
    fit = fit == 0 ? r - dp::kMaxDataOverhead : std::min(fit, r - dp::kMaxDataOverhead);
  }
  group_->mss_clamp_packet.store(static_cast<std::uint16_t>(fit), std::memory_order_relaxed);
}

void Client::log_health() {
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

void Client::publish() {
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
  if (sched_.strategy == dp::Strategy::Aggregate) rt_.tell_striping(*route, stripe_told_, monotonic_ns());
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

}  // namespace client_detail

using client_detail::Client;
using client_detail::Clock;
using client_detail::uplink_sockets;

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
}

// The sockets of the uplinks known at start (by -i, or the one default uplink), one
// per worker each. With auto-discovery none: the first scan adds what is there (of the
// -i names only, when some are given).
std::vector<std::vector<io::UdpSocket>> start_uplinks(const ClientOptions& opt, unsigned workers) {
  std::vector<std::vector<io::UdpSocket>> socks;
  if (opt.auto_discover) return socks;
  if (opt.interfaces.empty()) socks.push_back(uplink_sockets(opt, workers, {}));
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
      if (d.addr_be == 0) continue;  // the server's tunnel address: on the TUN's own prefix
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
  Client c(opt, rt, n, ops, nat ? &*nat : nullptr, resolver ? &*resolver : nullptr);
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
  Client c(opt, rt, n, ops, nullptr, nullptr);
  return c.run();
}

}  // namespace triglav::ctl
