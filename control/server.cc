#include "control/server.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <sys/resource.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include "control/authorized_clients.h"
#include "control/handshake.h"
#include "io/clock.h"
#include "control/key_file.h"
#include "control/host/nat.h"
#include "crypto/authkey.h"
#include "dataplane/handshake_guard.h"
#include "dataplane/socket_filter.h"
#include "io/privileges.h"
#include "io/tcp_relay.h"
#include "io/system.h"
#include "io/tun_device.h"

#include "control/server_impl.h"

namespace triglav::ctl {
namespace server_detail {

// The tunnel's IPv6 /64 from --ipv6-prefix: none, a given /64, or (auto) a unique local
// prefix (fd00::/8, RFC 4193) whose 40-bit global id comes from the server's public key,
// subnet 0. Throws std::runtime_error naming the mistake.
std::optional<std::array<std::uint8_t, 8>> ipv6_prefix(const std::string& text, const crypto::PublicKey& pub) {
  if (text == "none") return std::nullopt;
  std::array<std::uint8_t, 8> p{};
  if (text == "auto") {
    static constexpr char kLabel[] = "triglav ula v1";
    const crypto::Mac m =
        crypto::keyed_mac({reinterpret_cast<const std::uint8_t*>(kLabel), sizeof kLabel - 1}, {pub.data(), pub.size()});
    p[0] = 0xfd;
    std::memcpy(p.data() + 1, m.data(), 5);
    return p;
  }
  const auto slash = text.find('/');
  in6_addr a{};
  if (slash == std::string::npos || text.substr(slash + 1) != "64" ||
      inet_pton(AF_INET6, text.substr(0, slash).c_str(), &a) != 1)
    throw std::runtime_error("--ipv6-prefix " + text + ": expected auto, none or an IPv6 /64 such as fd12:3456:789a:1::/64");
  static constexpr std::uint8_t kZero[8] = {};
  if (std::memcmp(a.s6_addr + 8, kZero, 8) != 0)
    throw std::runtime_error("--ipv6-prefix " + text + ": the host bits (the last 64) must be zero");
  std::memcpy(p.data(), a.s6_addr, 8);
  return p;
}

int Server::run() {
  rt_.start_workers();
  std::string listening;
  for (const auto& e : opt_.listen) listening += (listening.empty() ? "" : ", ") + e.to_string();
  std::string v6 = "; no IPv6";
  if (v6_) {
    io::Ipv6Prefix net;
    std::memcpy(net.addr.data(), v6_->data(), v6_->size());
    net.len = 64;
    v6 = ", IPv6 " + net.to_string();
  }
  spdlog::info("server listening on {}, tunnel {} {}{}", listening, rt_.tun().name(), opt_.tun.address.to_string(), v6);
  if (authorized_)
    spdlog::info("clients need a client key: {} authorised in {}", authorized_->size(), opt_.authorized_clients);
  auto last_sweep = std::chrono::steady_clock::now();
  for (;;) {
    if (rt_.turn(*this, ops_, 20)) break;
    confirm_pending();
    probe();
    const auto now = std::chrono::steady_clock::now();
    if (now - last_sweep >= std::chrono::seconds(1)) {
      last_sweep = now;
      sweep();
      claim_waiting_subnets();
      forget_old_timestamps();
      reread_authorized(false);
      tokens_ = kErrorTokens;
      if (reject_logs_ > kRejectLogsPerSecond)
        spdlog::warn("{} more handshakes rejected in the last second (not logged one by one)",
                     reject_logs_ - kRejectLogsPerSecond);
      reject_logs_ = 0;
      note_handshake_load();
    }
  }
  spdlog::info("shutting down: closing {} session(s)", sessions_.size());
  rt_.stop_workers();  // from here on the control thread owns every session's state
  for (auto& [idx, s] : sessions_)  // not to an address that never proved itself
    if (s->confirmed.load(std::memory_order_relaxed)) rt_.send_transport(*s, dp::PacketType::Close, s->peer_copy());
  log_counters();
  return 0;
}

Status Server::status() const {
  Status st = rt_.status_header("server", opt_.tun.address.to_string(), sched_.strategy);
  st.state = "serving";
  for (const auto& [cid, c] : clients_) {
    ClientStatus cs;
    cs.address = io::ipv4_to_string(c.group->inner_ipv4_be);
    char id[17];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(cid));
    cs.id = id;
    cs.key = c.key_name;
    cs.benchmark = c.group->sink;
    for (unsigned u = 0; u < dp::kMaxUplinks; ++u) {
      if (c.index[u] == 0) continue;
      const dp::Session* s = sessions_.at(c.index[u]).get();
      UplinkStatus us;
      us.id = u;
      prober_.fill(us, *s);
      us.name = us.peer;
      us.handshakes = c.handshakes[u];
      cs.uplinks.push_back(std::move(us));
    }
    st.clients.push_back(std::move(cs));
  }
  st.handshakes = handshakes_;
  st.handshake_rejects = rejects_;
  st.cookie_replies = st.counters.get(dp::Counter::TxCookieReplies);
  st.handshakes_rate_limited = st.counters.get(dp::Counter::DropHandshakeRate);
  if (nat_ != nullptr) {
    st.nat = true;
    st.nat_entries = nat_->active_entries();
  }
  if (relay_ != nullptr) st.tcp_connections = relay_->stats().open;
  return st;
}

void Server::reload() {
  reread_authorized(true);
  if (auto r = reload_settings(opt_.reload, ops_)) {
    sched_ = r->sched;
    publish();
  }
}

void Server::reread_authorized(bool force) {
  if (!authorized_) return;
  const std::string st = AuthorizedClients::stamp(opt_.authorized_clients);
  if (!force && st == stamp_) return;
  stamp_ = st;
  try {
    authorized_ = AuthorizedClients::load(opt_.authorized_clients);
  } catch (const std::exception& e) {
    spdlog::error("{}; keeping the {} key(s) read before", e.what(), authorized_->size());
    return;
  }
  spdlog::info("authorized_clients read again: {} key(s)", authorized_->size());
  std::vector<std::uint64_t> revoked;
  for (const auto& [cid, c] : clients_)
    if (authorized_->find(c.key_id) == nullptr) revoked.push_back(cid);
  for (std::uint64_t cid : revoked) {
    Client& c = clients_.at(cid);
    spdlog::warn("client key '{}' is no longer authorised: closing client {}", c.key_name,
                 io::ipv4_to_string(c.group->inner_ipv4_be));
    remove_client(cid, /*notify=*/true);
  }
  if (!revoked.empty()) publish();
}

void Server::on_message(const dp::ControlMessage& m) {
  if (m.kind == dp::ControlMessage::Kind::Pong) {
    const std::int64_t now = monotonic_ns();
    const bool changed = prober_.on_pong(m.session_index, {m.data.data(), m.len}, now);
    // aggregate places each packet by the uplinks' latest RTT and rate: fresher views,
    // at most kStripePublishNs apart (a publish costs O(clients)).
    if (changed || (sched_.strategy == dp::Strategy::Aggregate && now - last_publish_ >= kStripePublishNs))
      publish_soon();
    return;
  }
  if (m.kind == dp::ControlMessage::Kind::Control) {
    on_control(m);
    return;
  }
  if (m.kind == dp::ControlMessage::Kind::Close) {
    auto it = sessions_.find(m.session_index);
    if (it != sessions_.end()) {
      spdlog::info("client {} ({}) closed its session on uplink {}",
                   io::ipv4_to_string(it->second->group->inner_ipv4_be), m.from.to_string(), it->second->uplink);
      remove(it->first, true, /*notify=*/false);
    }
    return;
  }
  dp::Header h;
  if (dp::decode_header({m.data.data(), m.len}, h) != dp::HeaderError::Ok) return;
  if (h.type == dp::PacketType::Handshake && h.aux == dp::kHandshakeInit) {
    on_initiation(m);
  } else {
    ++rejects_;  // responses and errors are for clients
  }
}

void Server::on_control(const dp::ControlMessage& m) {
  auto it = sessions_.find(m.session_index);
  if (it == sessions_.end() || m.len < 1) return;
  Client& c = clients_.at(it->second->group->client_id);
  if (std::uint16_t mask = 0; dp::decode_stripe_uplinks(m.data.data(), m.len, mask)) {
    c.group->peer_striped.store(mask, std::memory_order_relaxed);
    return;
  }
  std::uint8_t id = 0;
  if (std::uint16_t size = 0; dp::decode_path_mtu(m.data.data(), m.len, id, size)) {
    // A limit below any IPv4 path's (576) is not one a search finds: ignored.
    if (id < dp::kMaxUplinks && (size == 0 || size >= 512)) {
      if (c.group->max_datagram[id].exchange(size, std::memory_order_relaxed) != size)
        spdlog::info("client {}: uplink {} {}", io::ipv4_to_string(c.group->inner_ipv4_be), id,
                     size == 0 ? std::string("carries whole tunnel packets")
                               : fmt::format("carries datagrams of {} bytes: larger packets go in fragments", size));
    }
    return;
  }
  if (m.data[0] == static_cast<std::uint8_t>(dp::ControlKind::UplinkDown) && m.len >= 2 &&
      m.data[1] < dp::kMaxUplinks && c.index[m.data[1]] != 0) {
    dp::Session* s = sessions_.at(c.index[m.data[1]]).get();
    if (prober_.on_link(s, false)) {
      spdlog::info("client {}: uplink {} reported down by the client; return traffic moves off it",
                   io::ipv4_to_string(c.group->inner_ipv4_be), m.data[1]);
      publish();
    }
  }
}

void Server::flush_answers() {
  if (publish_due_) publish();
  for (const Answer& a : answers_) rt_.uplink(a.socket).send_to(a.bytes.data(), a.bytes.size(), a.to);
  answers_.clear();
}

void Server::publish() {
  publish_due_ = false;
  auto snap = std::make_unique<dp::Snapshot>();
  ++version_;
  for (auto& [cid, c] : clients_) {
    std::array<dp::Session*, dp::kMaxUplinks> ups{};
    std::array<dp::UplinkView, dp::kMaxUplinks> views{};
    // A client with no active session yet: its pending ones are in its route, which
    // the workers use only once a session is confirmed (the worker that receives the
    // first authenticated packet sets that), so the first answer waits for nobody.
    const bool fresh = std::all_of(c.index.begin(), c.index.end(), [](std::uint32_t i) { return i == 0; });
    for (std::size_t u = 0; u < dp::kMaxUplinks; ++u) {
      for (std::uint32_t i : {c.pending[u], c.previous[u]})
        if (i != 0) snap->by_index.emplace(i, sessions_.at(i).get());
      const std::uint32_t routed = c.index[u] != 0 ? c.index[u] : fresh ? c.pending[u] : 0;
      if (routed == 0) continue;
      dp::Session* s = sessions_.at(routed).get();
      ups[u] = s;
      views[u] = prober_.view(s);
      snap->by_index.emplace(routed, s);
    }
    if (c.group->contending.load(std::memory_order_relaxed)) continue;  // the address is another's
    auto route = dp::make_route(c.group.get(), ups, views, sched_, version_);
    if (sched_.strategy == dp::Strategy::Aggregate) rt_.tell_striping(*route, c.stripe_told, monotonic_ns());
    if (c.bench_streams > 0 && !fresh) {  // a benchmark download, once a session is confirmed: the workers send to it
      route->gen = {c.bench_streams, opt_.tun.address.addr_be, c.group->inner_ipv4_be,
                    static_cast<std::uint16_t>(opt_.tun.mtu)};
      snap->generate.push_back(route.get());
    }
    snap->by_inner_ipv4.emplace(c.group->inner_ipv4_be, route.get());
    if (c.subnets_claimed)
      for (std::uint8_t i = 0; i < c.group->n_subnets; ++i) snap->by_subnet.add(c.group->subnets[i], route.get());
    snap->routes.push_back(std::move(route));
  }
  if (v6_) {
    snap->has_ipv6 = true;
    snap->ipv6_prefix = *v6_;
  }
  const bool generate = !snap->generate.empty();
  rt_.snapshots().publish(std::move(snap));
  if (generate) rt_.wake_workers();  // asleep, a worker would not notice until a packet came
  last_publish_ = monotonic_ns();
}

void Server::probe() {
  const std::int64_t now = monotonic_ns();
  const bool changed = prober_.tick(now, [this](dp::Session& s, std::uint64_t body) {
    std::uint8_t b[8];
    dp::store_le64(b, body);
    rt_.send_transport(s, dp::PacketType::Ping, s.peer_copy(), b);
  });
  if (changed || (!sessions_.empty() && now - last_publish_ >= 1'000'000'000)) publish();
}

}  // namespace server_detail

namespace {

using server_detail::Server;
using server_detail::ipv6_prefix;



crypto::AuthKeyAddress to_authkey_address(const io::Endpoint& e) {
  crypto::AuthKeyAddress a;
  a.port = e.port();
  if (e.family() == AF_INET6) {
    a.v6 = true;
    std::memcpy(a.ip.data(), &reinterpret_cast<const sockaddr_in6*>(&e.addr)->sin6_addr, 16);
  } else {
    std::memcpy(a.ip.data(), &reinterpret_cast<const sockaddr_in*>(&e.addr)->sin_addr, 4);
  }
  return a;
}

// An IPv6 listening address serves IPv6 alone when an IPv4 one has its port (so both
// bind: "0.0.0.0:7443" with "[::]:7443"); alone, "[::]:7443" serves both families.
bool v6only(const io::Endpoint& e, const std::vector<io::Endpoint>& listen) {
  return e.family() == AF_INET6 && std::any_of(listen.begin(), listen.end(), [&e](const io::Endpoint& o) {
           return o.family() == AF_INET && o.port() == e.port();
         });
}

// Addresses a client can reach us on when we listen on a wildcard address: every
// address of every interface that is up, except loopback and link-local ones (IPv4 ones
// not for an IPv6-only socket).
std::vector<io::Endpoint> local_addresses(const io::Endpoint& listen, bool v6_only) {
  std::vector<io::Endpoint> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    const int fam = i->ifa_addr->sa_family;
    if (fam == AF_INET && !v6_only) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      const std::uint32_t h = ntohl(sin->sin_addr.s_addr);
      if ((h >> 16) == 0xa9fe) continue;  // 169.254/16
      out.push_back(io::Endpoint::from_ipv4(sin->sin_addr.s_addr, listen.port()));
    } else if (fam == AF_INET6 && listen.family() == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr)) continue;
      out.push_back(io::Endpoint::from_ipv6(sin6->sin6_addr.s6_addr, listen.port()));
    }
  }
  freeifaddrs(list);
  return out;
}

// The AuthKey clients use: the server's public key and where to reach it (--address, else
// the key file's addresses, else where it listens: `bound`, the listening sockets' own
// addresses, whose ports are real where --listen said port 0); `adv` gets those addresses.
crypto::AuthKey authkey_of(const ServerOptions& opt, const ServerKeyFile& kf, const std::vector<io::Endpoint>& bound,
                           std::vector<io::Endpoint>& adv) {
  crypto::AuthKey ak;
  ak.server_key = kf.key.pub;
  adv = opt.advertise;
  if (adv.empty()) {
    for (const auto& a : kf.addresses) {
      std::string err;
      auto e = io::parse_endpoint(a, err);
      if (!e) throw std::runtime_error("key file " + opt.key_file + ": " + err);
      adv.push_back(*e);
    }
  }
  if (adv.empty())  // neither given nor in the key file: where we listen (each address once)
    for (const auto& l : bound)
      for (const auto& e : l.is_unspecified() ? local_addresses(l, v6only(l, bound)) : std::vector<io::Endpoint>{l})
        if (std::find(adv.begin(), adv.end(), e) == adv.end()) adv.push_back(e);
  for (const auto& e : adv) {
    if (e.port() == 0) throw std::runtime_error("no port to give clients for " + e.to_string() + ": use --address");
    ak.addresses.push_back(to_authkey_address(e));
  }
  return ak;
}

// A key made by --generate-key, saved to --key FILE (with the addresses clients use).
void save_new_key(const ServerOptions& opt, ServerKeyFile& kf, const std::vector<io::Endpoint>& adv) {
  std::vector<std::string> texts;
  for (const auto& e : adv) texts.push_back(e.to_string());
  kf.addresses = texts;
  save_key_file(opt.key_file, kf);
  spdlog::info("new key saved to {}", opt.key_file);
}

}  // namespace

int run_server(const ServerOptions& opt) {
  if (!opt.print_key && !io::has_net_admin())
    throw std::runtime_error("triglav server needs root (CAP_NET_ADMIN) to create its TUN device");
  if (!opt.user.empty()) io::lookup_user(opt.user);  // a wrong name before anything is set up
  ServerKeyFile kf;
  bool have_key = false;
  if (!opt.key_file.empty() && (!opt.generate_key || std::filesystem::exists(opt.key_file))) {
    kf = load_key_file(opt.key_file);
    have_key = true;
  } else if (!opt.generate_key) {
    throw std::runtime_error("the server needs a key: --key FILE or --generate-key");
  }
  if (!have_key) kf.key = crypto::KeyPair::generate();
  if (opt.print_key) {  // nothing set up, nothing served
    std::vector<io::Endpoint> adv;
    const crypto::AuthKey ak = authkey_of(opt, kf, opt.listen, adv);
    if (!have_key) save_new_key(opt, kf, adv);
    std::printf("%s\n", crypto::encode_authkey(ak).c_str());
    return 0;
  }

  if (opt.listen.empty() || opt.listen.size() > dp::kMaxUplinks)
    throw std::runtime_error("listen on 1 to " + std::to_string(dp::kMaxUplinks) + " addresses");
  TunSetup tun = opt.tun;
  tun.workers = worker_count(opt.tun.workers);
  const auto prefix6 = ipv6_prefix(opt.ipv6_prefix, kf.key.pub);
  if (prefix6) {  // the server is prefix::1
    std::array<std::uint8_t, 16> a{};
    std::memcpy(a.data(), prefix6->data(), 8);
    a[15] = 1;
    tun.address6 = a;
  }
  std::vector<std::vector<io::UdpSocket>> socks;  // per address, one per worker: SO_REUSEPORT
  for (const auto& e : opt.listen) {                // steered: dp::steering_program
    socks.push_back(io::UdpSocket::bind_group(e, tun.workers, {}, opt.socket_buffers, v6only(e, opt.listen)));
    for (auto& s : socks.back()) s.attach_filter(dp::server_socket_filter());
    if (tun.workers > 1) socks.back().front().attach_reuseport_program(dp::steering_program(tun.workers));
  }

  std::vector<io::Endpoint> bound;
  for (const auto& group : socks) bound.push_back(group.front().local());
  std::vector<io::Endpoint> adv;
  const crypto::AuthKey ak = authkey_of(opt, kf, bound, adv);
  if (opt.generate_key && !have_key && !opt.key_file.empty()) save_new_key(opt, kf, adv);

  // tcp_fallback: a TCP listener beside each UDP one, relaying to it from loopback.
  // Declared first, so it outlives the relay that writes it and the workers that read it.
  std::unique_ptr<io::RelaySources> relay_sources;  // who each relayed connection is, for the workers
  std::optional<io::TcpRelay> relay;
  if (opt.tcp_fallback) {
    relay_sources = std::make_unique<io::RelaySources>();
    io::TcpRelay::Limits lim;
    lim.sources = relay_sources.get();
    // Two descriptors a connection, within what this process may open (and some to spare).
    rlimit nofile{};
    getrlimit(RLIMIT_NOFILE, &nofile);
    const long fds = nofile.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(nofile.rlim_cur);
    lim.max_connections =
        static_cast<unsigned>(std::clamp<long>(std::min<long>(4L * opt.max_connections, (fds - 256) / 2), 16, 65536));
    lim.idle_timeout_s = opt.idle_timeout_s;
    lim.unanswered_timeout_s = opt.tcp_connect_timeout_s;
    lim.nodelay = opt.tcp_nodelay;
    lim.keepalive_s = opt.tcp_keepalive_s;
    // Errors answer anyone (a wrong key): only other packets show someone who holds the key.
    lim.is_answer = [](const std::uint8_t* d, std::size_t n) {
      return n > 0 && (d[0] & 0x0f) != static_cast<unsigned>(dp::PacketType::Error);
    };
    relay.emplace(lim);
    for (std::size_t i = 0; i < socks.size(); ++i) {
      const io::Endpoint at = socks[i].front().local();
      relay->listen(at, at.is_unspecified() ? io::Endpoint::loopback(at.family(), at.port()) : at,  // this host
                    v6only(opt.listen[i], opt.listen));
    }
    spdlog::info("tcp fallback: accepting clients over TCP on the same ports");
  }
  Runtime rt(std::move(socks), tun);
  rt.guard_handshakes(dp::HandshakeMacKeys::for_server(kf.key.pub), relay_sources.get());
  std::optional<KernelNat> nat;
  if (opt.nat_outbound) nat.emplace(KernelNat::Kind::Outbound, rt.tun().name(), opt.tun.address, opt.nat, prefix6);
  StatusServer ops(opt.status);  // after the TUN: a taken name is the error to report first
  Server server(opt, std::move(kf.key), rt, ops, nat ? &*nat : nullptr, relay ? &*relay : nullptr);
  if (!opt.user.empty()) {
    drop_root(opt.user, {{ops.socket_path(), opt.pid_file}, ""});
    if (!opt.authorized_clients.empty()) {  // read again on changes: it must stay readable
      try {
        AuthorizedClients::load(opt.authorized_clients);
      } catch (const std::exception& e) {
        throw std::runtime_error("--user " + opt.user + ": " + e.what());
      }
    }
  }
  if (relay) relay->start();  // after the drop: the relay's thread holds no more than the rest
  const std::string authkey = crypto::encode_authkey(ak) + "\n";
  std::fputs(authkey.c_str(), stdout);
  std::fflush(stdout);
  if (opt.on_ready) opt.on_ready(authkey);
  return server.run();
}

}  // namespace triglav::ctl
