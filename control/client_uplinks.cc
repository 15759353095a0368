// Each uplink of the client: its transport (UDP, or the TCP fallback), handshakes and
// rekeys, the session it installs and retires, and uplinks coming and going
// (auto-discovery, link events).
#include "control/client_impl.h"

#include <net/if_arp.h>

#include <cstdio>

namespace triglav::ctl {
namespace {
// A PPP link (ARPHRD_PPP): point-to-point, yet an uplink (PPPoE, LTE modems over PPP).
bool is_ppp(const std::string& name) {
  FILE* f = std::fopen(("/sys/class/net/" + name + "/type").c_str(), "r");
  if (f == nullptr) return false;
  int type = 0;
  const bool ok = std::fscanf(f, "%d", &type) == 1;
  std::fclose(f);
  return ok && type == ARPHRD_PPP;
}
}  // namespace

std::vector<std::string> usable_interfaces(const std::string& tun, const std::vector<std::string>& only) {
  std::vector<std::string> names;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return names;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const unsigned f = i->ifa_flags;
    if (!(f & IFF_UP) || !(f & IFF_RUNNING) || (f & IFF_LOOPBACK)) continue;
    const std::string n = i->ifa_name;
    // -i with --auto-discover: only these names, followed as they come and go, whatever
    // their type (the user chose them)
    if (!only.empty()) {
      if (std::find(only.begin(), only.end(), n) == only.end()) continue;
    } else {
      if ((f & IFF_POINTOPOINT) && !is_ppp(n)) continue;  // a tunnel, not a link (PPPoE, LTE over PPP are)
      if (n == tun || access(("/sys/class/net/" + n + "/tun_flags").c_str(), F_OK) == 0) continue;
      // A bridge is a LAN (docker0, virbr0, a gateway's br-lan), not a way out: named only.
      if (access(("/sys/class/net/" + n + "/bridge").c_str(), F_OK) == 0) continue;
    }
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  freeifaddrs(list);
  return names;
}

}  // namespace triglav::ctl

namespace triglav::ctl::client_detail {

void Client::keep_keys_fresh(Uplink& u, Clock::time_point now) {
  const auto age = now - u.established;
  if (age >= std::chrono::milliseconds(opt_.reject_after_ms)) {
    spdlog::warn("uplink {} ({}): no rekey within {} s; dropping the session and handshaking again", u.id,
                 u.name, opt_.reject_after_ms / 1000.0);
    drop_session(u);
    return;
  }
  bool used = false;
  u.session->tx.for_each([&used](const dp::SenderState& t) {
    used |= t.next_counter.load(std::memory_order_relaxed) >= dp::kRekeyAfterMessages;
  });
  if ((age >= std::chrono::milliseconds(opt_.rekey_after_ms) || used) && now >= u.next_try) send_initiation(u, now);
}

void Client::announce_down(const Uplink& down) {
  const std::uint8_t body[2] = {static_cast<std::uint8_t>(dp::ControlKind::UplinkDown),
                                static_cast<std::uint8_t>(down.id)};
  for (Uplink& o : active_uplinks())
    if (&o != &down && o.session && prober_.state(o.session.get()) != dp::HealthState::Down)
      rt_.send_transport(*o.session, dp::PacketType::Control, o.session->peer_copy(), body);
}

void Client::on_link(int ifindex, bool up) {
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

void Client::send_initiation(Uplink& u, Clock::time_point now) {
  dp::InitPayload p;
  p.uplink = static_cast<std::uint8_t>(u.id);
  // Never 0 (which marks an initiation); the low byte the same on every uplink, so that
  // the server's packets reach our workers as dp::steering_program says.
  p.sender_index = (static_cast<std::uint32_t>(crypto::random_u64()) & ~0xffu) | index_low_;
  p.inner_ipv4_be = address_.addr_be;  // 0 until the server assigned one
  // Timestamps grow within a run even if the clock steps back (NTP): the server refuses
  // one not newer than the last it took from this client, so a step back would stall rekeys.
  last_timestamp_ = std::max(last_timestamp_ + 1, static_cast<std::uint64_t>(io::realtime_ns()));
  p.timestamp_ns = last_timestamp_;
  p.client_id = group_->client_id;
  p.ciphers = (opt_.aes256gcm ? dp::kOfferAes256Gcm : 0) | dp::kOfferChecksumPartial | dp::kOfferStriped |
              dp::kOfferFragments | dp::kOfferRepair;
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

std::chrono::milliseconds Client::retry_wait(Uplink& u) {
  const std::chrono::milliseconds base(opt_.retry_delay_ms);
  if (u.session) return base;  // a rekey: the session carries on meanwhile
  if (opt_.max_retries <= 0 || ++u.retries <= opt_.max_retries) return base;
  if (u.retries == opt_.max_retries + 1)
    spdlog::warn("uplink {} ({}): no answer to {} handshakes in a row; trying less often, up to every {} s",
                 u.id, u.name, opt_.max_retries, kMaxRetryWait.count() / 1000);
  const int doublings = std::min(u.retries - opt_.max_retries, 16);
  return std::max(base, std::min(std::chrono::milliseconds(base.count() << doublings), kMaxRetryWait));
}

void Client::choose_transport(Uplink& u, Clock::time_point now) {
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
  u.pmtu = PathMtuSearch{};  // a stream carries any size
  u.unanswered_since = now;
  u.hs.reset();
  spdlog::info("uplink {} ({}): no answer over UDP for {:.1f} s; trying TCP to {}", u.id, u.name,
               opt_.tcp_fallback_after_ms / 1000.0, u.server.to_string());
}

void Client::use_udp(Uplink& u, Clock::time_point now) {
  if (relay_) relay_->close(u.id);
  u.tcp = false;
  u.pmtu = PathMtuSearch{};
  u.unanswered_since = now;
  u.hs.reset();
}

io::Endpoint Client::relay_side(const Uplink& u) const {
  const std::uint16_t port = rt_.uplink(u.id).local().port();
  if (u.ifindex == 0) return io::Endpoint::loopback(AF_INET, port);
  for (const io::Endpoint& a : addresses_of(u.ifindex))
    if (a.family() == AF_INET)
      return io::Endpoint::from_ipv4(reinterpret_cast<const sockaddr_in*>(&a.addr)->sin_addr.s_addr, port);
  throw std::runtime_error(u.name + " has no IPv4 address");
}

void Client::rescan() {
  rescan_at_ = Clock::now() + std::chrono::seconds(1);
  const std::vector<std::string> names = usable_interfaces(rt_.tun_name(), opt_.interfaces);
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
  scanned_ = true;
}

void Client::add_uplink(const std::string& name) {
  Uplink* free = nullptr;
  // A named interface (-i with auto-discovery) takes the id of its place in -i, so that
  // weights and primary mean what they say; others the first free id.
  const auto named = std::find(opt_.interfaces.begin(), opt_.interfaces.end(), name);
  if (named != opt_.interfaces.end()) {
    Uplink& at = ups_[static_cast<std::size_t>(named - opt_.interfaces.begin())];
    if (!at.active && rt_.uplink(at.id).fd() < 0) free = &at;
  }
  for (Uplink& u : ups_)
    if (free == nullptr && !u.active && rt_.uplink(u.id).fd() < 0) free = &u;
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
  u.pmtu = PathMtuSearch{};  // another interface's path
  // Those of the first scan are the start's: the handshake line names them.
  spdlog::log(scanned_ ? spdlog::level::info : spdlog::level::debug, "uplink {} ({}) added", u.id, u.name);
}

void Client::remove_uplink(Uplink& u) {
  spdlog::info("uplink {} ({}) removed: the interface is gone", u.id, u.name);
  drop_session(u);
  use_udp(u, Clock::now());
  u.active = false;
  u.hs.reset();
  rt_.release_uplink(u.id);  // the socket closes when the workers let go of it
}

[[noreturn]] void Client::fail() {
  if (active_uplinks().empty())
    throw std::runtime_error("no uplink: no interface is up with an IPv4 address (auto-discovery; name one with -i, "
                             "or --no-auto-discover for the one the routing table chooses)");
  std::string where;
  for (const auto& e : opt_.endpoints) where += (where.empty() ? "" : ", ") + e.to_string();
  const std::string secs = std::to_string(opt_.handshake_timeout_ms / 1000.0).substr(0, 4);
  if (last_error_) throw std::runtime_error("handshake with " + where + " failed: " + error_text(*last_error_));
  throw std::runtime_error("handshake with " + where + " failed: no valid answer within " + secs +
                           " s (server down, unreachable, or holding a different key)" +
                           (last_tcp_error_.empty() ? "" : "; over TCP: " + last_tcp_error_));
}

std::string Client::error_text(dp::ErrorCode code) const {
  switch (code) {
    case dp::ErrorCode::HandshakeFailed:
      return "the server could not decrypt it (this AuthKey does not hold the server's key)";
    case dp::ErrorCode::AddressRejected:
      return address_.addr_be == 0 ? "the server has no free address in its pool"
                                   : "the server refused tunnel address " + address_.to_string() +
                                         " (taken by another client, or outside the server's tunnel prefix)";
    case dp::ErrorCode::AddressIsServers:
      return "tunnel address " + io::ipv4_to_string(address_.addr_be) +
             " is the server's own: give ipv4_addr (--ipv4) another address of the server's tunnel prefix, or leave "
             "it out to be assigned one";
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

bool Client::behind_nat(const Uplink& u, const dp::ResponsePayload& r) const {
  if (r.observed_port == 0) return false;
  if (r.observed_port != rt_.uplink(u.id).local().port()) return true;
  const auto ours = addresses_of(u.ifindex);
  return !ours.empty() && std::none_of(ours.begin(), ours.end(),
                      [&](const io::Endpoint& a) { return address_digest(a) == r.observed_digest; });
}

void Client::on_new_server_epoch(const Uplink& except) {
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

void Client::install(Uplink& u, ClientHandshake::Established& est, const io::Endpoint& from) {
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
  s->peer_takes_striped = est.response.striped;
  s->peer_takes_fragments = est.response.fragments;
  s->peer_takes_repair = est.response.repair;
  u.told_ns = 0;  // a new session may be a new server run, which knows no path limit yet
  s->set_peer(from);
  s->last_rx_ns.store(io::monotonic_ns());
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

void Client::drop_session(Uplink& u, bool keep_receiving) {
  u.pmtu = PathMtuSearch{};  // the path may be another when a session comes back
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

void Client::retire(std::unique_ptr<dp::Session> s) {
  if (!s) return;
  prober_.remove(s.get());
  dp::Session* old = s.release();
  rt_.qsbr().retire([old] { delete old; });
}

}  // namespace triglav::ctl::client_detail
