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

namespace triglav::ctl {
namespace {

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

// Addresses a client can reach us on when we listen on a wildcard address: every
// address of every interface that is up, except loopback and link-local ones.
std::vector<io::Endpoint> local_addresses(const io::Endpoint& listen) {
  std::vector<io::Endpoint> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    const int fam = i->ifa_addr->sa_family;
    if (fam == AF_INET) {
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

class Server {
 public:
  Server(const ServerOptions& opt, crypto::KeyPair key, Runtime& rt, StatusServer& ops, const KernelNat* nat,
         const io::TcpRelay* relay)
      : opt_(opt), key_(std::move(key)), rt_(rt), ops_(ops), nat_(nat), relay_(relay) {
    if (!opt_.authorized_clients.empty()) {
      stamp_ = AuthorizedClients::stamp(opt_.authorized_clients);
      authorized_ = AuthorizedClients::load(opt_.authorized_clients);
      find_key_ = [this](const crypto::ClientKeyId& id) -> const crypto::SecretKey* {
        const AuthorizedClient* c = authorized_->find(id);
        return c == nullptr ? nullptr : &c->key.psk;
      };
    }
  }

  int run() {
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
      const auto w = rt_.wait(20);
      if (w.dump) log_counters();
      if (w.reload) reload();
      dp::ControlMessage m;
      while (rt_.pop(m)) on_message(m);
      ops_.poll([this] { return status(); });
      if (w.stop) break;
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

 private:
  static constexpr int kErrorTokens = 10;  // Error packets per second at most
  static constexpr unsigned kRejectLogsPerSecond = 5;
  // A replaced session keeps decrypting this long (packets in flight, the client's
  // switch to the new keys); a pending one that never hears from its client goes.
  static constexpr std::int64_t kGraceNs = 10'000'000'000;
  static constexpr std::int64_t kPendingTimeoutNs = 10'000'000'000;

  // What `triglav status` and the metrics show: every client and its uplinks.
  Status status() const {
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

  // SIGHUP: the scheduler settings from the configuration, published at once.
  void reload() {
    reread_authorized(true);
    if (auto r = reload_settings(opt_.reload, ops_)) {
      sched_ = r->sched;
      publish();
    }
  }

  // authorized_clients again when it changed (checked every second) or on SIGHUP: the
  // sessions of a key no longer in it end at once. A list that does not load is
  // reported and the previous one stays in force.
  void reread_authorized(bool force) {
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

  void log_counters() {
    spdlog::info("clients={} sessions={} handshake_rejects={} counters: {}", clients_.size(), sessions_.size(),
                 rejects_, rt_.totals().format());
  }

  // One client: its group (shared with the workers) and its uplinks' sessions.
  // Per uplink id up to three sessions: the active one (routed), a pending one (a rekey
  // whose handshake completed, but no authenticated packet came on it yet) and the
  // previous one (replaced by a rekey; still decrypts for kGraceNs).
  static constexpr int kBenchIdleS = 5;

  struct Client {
    std::unique_ptr<dp::Group> group;
    std::array<std::uint32_t, dp::kMaxUplinks> index{};  // active session index per uplink id (0: none)
    std::array<std::uint32_t, dp::kMaxUplinks> pending{};
    std::array<std::uint32_t, dp::kMaxUplinks> previous{};
    std::array<std::int64_t, dp::kMaxUplinks> previous_until{};
    crypto::ClientKeyId key_id{};  // zero when the server takes any client
    std::string key_name;
    std::array<std::uint64_t, dp::kMaxUplinks> last_ts{};  // newest accepted initiation per uplink
    std::uint64_t newest_ts = 0;
    std::array<std::uint64_t, dp::kMaxUplinks> handshakes{};  // completed, per uplink id
    unsigned bench_streams = 0;  // a benchmark session that downloads: the server sends on these
    bool subnets_claimed = false;  // the key's client_routes lead to this run (one run at a time)
  };

  void on_message(const dp::ControlMessage& m) {
    if (m.kind == dp::ControlMessage::Kind::Pong) {
      if (prober_.on_pong(m.session_index, {m.data.data(), m.len}, monotonic_ns())) publish();
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

  // A client's Control message, authenticated on one of its sessions. UplinkDown: the
  // named uplink's session is Down at once, so return traffic leaves it now.
  void on_control(const dp::ControlMessage& m) {
    auto it = sessions_.find(m.session_index);
    if (it == sessions_.end() || m.len < 1) return;
    Client& c = clients_.at(it->second->group->client_id);
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

  // May this initiation (already authenticated) create or replace a session?
  bool admissible(const dp::InitPayload& in, std::uint32_t addr, std::uint8_t uplink, dp::ErrorCode& refuse) {
    if (addr == 0) {
      spdlog::warn("client {:016x} asked for an address: the pool {} has none free", in.client_id,
                   opt_.tun.address.to_string());
      return false;
    }
    if (!address_allowed(addr)) return false;
    if (uplink >= dp::kMaxUplinks) {
      spdlog::warn("client {} uses uplink id {} (at most {} uplinks)", io::ipv4_to_string(addr),
                   uplink, dp::kMaxUplinks);
      return false;
    }
    // With client keys, a client run and a tunnel address stay with the key that has them.
    if (auto it = clients_.find(in.client_id); it != clients_.end() && it->second.key_id != in.key_id) return false;
    if (auto o = by_ip_.find(addr); o != by_ip_.end() && clients_.at(o->second).key_id != in.key_id) {
      spdlog::warn("client key '{}' asked for {}, which another key holds", key_name(in.key_id),
                   io::ipv4_to_string(addr));
      return false;
    }
    refuse = dp::ErrorCode::StaleTimestamp;  // below: replayed or stale initiations
    // The client's clock must be near ours: a captured initiation goes stale within the
    // window even when nothing here remembers it (a restart), and no timestamp from the
    // far future can pin an address.
    const std::int64_t skew_ns = std::int64_t{opt_.max_clock_skew_s} * 1'000'000'000;
    const std::int64_t now_rt = io::realtime_ns();
    const std::int64_t off = in.timestamp_ns > static_cast<std::uint64_t>(now_rt) + static_cast<std::uint64_t>(skew_ns)
                                 ? skew_ns + 1  // far in the future (no signed overflow)
                                 : static_cast<std::int64_t>(in.timestamp_ns) - now_rt;
    if (off > skew_ns || off < -skew_ns) {
      if (reject_logs_ < kRejectLogsPerSecond)  // on_initiation counts the refusal's log line
        spdlog::warn("client {:016x}: its clock is {:.1f} s {} the server's (max_clock_skew {} s): initiation refused",
                   in.client_id, std::abs(static_cast<double>(off)) / 1e9, off > 0 ? "ahead of" : "behind",
                   opt_.max_clock_skew_s);
      return false;
    }
    if (auto it = newest_ts_.find(replay_key(in, uplink)); it != newest_ts_.end() && in.timestamp_ns <= it->second)
      return false;  // replayed, even if its client is long gone
    auto owner = by_ip_.find(addr);
    if (owner == by_ip_.end()) {
      if (clients_.contains(in.client_id) || clients_.size() < static_cast<std::size_t>(opt_.max_connections))
        return true;
      refuse = dp::ErrorCode::ServerFull;
      spdlog::warn("client {} refused: {} clients connected (max_connections)", io::ipv4_to_string(addr),
                   clients_.size());
      return false;
    }
    const Client& c = clients_.at(owner->second);
    if (owner->second == in.client_id) return in.timestamp_ns > c.last_ts[uplink];
    // Another client run holds the address: a newer one may contend for it (it moves
    // only once the contender is confirmed and the holder silent: confirm_pending).
    if (in.timestamp_ns <= c.newest_ts) {
      refuse = dp::ErrorCode::AddressRejected;  // an older run than the holder: not a replay as such
      return false;
    }
    if (!clients_.contains(in.client_id) && clients_.size() >= static_cast<std::size_t>(opt_.max_connections)) {
      refuse = dp::ErrorCode::ServerFull;
      return false;
    }
    return true;
  }

  // What replayed initiations are recognised by: the client key (or, on an open server,
  // the client run) and the uplink, whose timestamps grow.
  struct ReplayKey {
    crypto::ClientKeyId key{};
    std::uint64_t client_id = 0;  // 0 with client keys: a key's runs share its timestamps
    std::uint8_t uplink = 0;
    auto operator<=>(const ReplayKey&) const = default;
  };
  ReplayKey replay_key(const dp::InitPayload& in, std::uint8_t uplink) const {
    return {in.key_id, authorized_ ? 0 : in.client_id, uplink};
  }

  // Once a second: timestamps older than the clock window need no memory (the window
  // refuses them), so the table holds about one entry per uplink handshaken within it.
  void forget_old_timestamps() {
    const std::int64_t oldest = io::realtime_ns() - std::int64_t{opt_.max_clock_skew_s} * 1'000'000'000;
    std::erase_if(newest_ts_, [&](const auto& e) { return static_cast<std::int64_t>(e.second) < oldest; });
  }

  void on_initiation(const dp::ControlMessage& m) {
    HandshakeReject reject{};
    dp::ErrorCode refuse = dp::ErrorCode::AddressRejected;
    std::uint32_t index = 0;
    std::uint32_t addr = 0;  // the client's tunnel address, as asked or from the pool
    std::uint64_t epoch = 0;
    dp::Header h;
    (void)dp::decode_header({m.data.data(), m.len}, h);
    auto r = answer_initiation(
        key_.priv.span(), {m.data.data(), m.len}, reject,
        [&](const dp::InitPayload& in, dp::ResponsePayload& out) {
          if ((in.mode & dp::kModeBenchmark) != 0 && !opt_.allow_benchmark) {
            refuse = dp::ErrorCode::BenchmarkRefused;
            return false;
          }
          addr = in.inner_ipv4_be != 0 ? in.inner_ipv4_be : assign_address(in.client_id);
          if (!admissible(in, addr, h.uplink, refuse)) return false;
          out.client_ipv4_be = addr;
          auto known = clients_.find(in.client_id);
          epoch = known != clients_.end() && known->second.group ? known->second.group->epoch : crypto::random_u64();
          out.group_epoch = epoch;
          index = new_index();
          out.sender_index = index;
          out.cipher = (in.ciphers & dp::kOfferAes256Gcm) != 0 && opt_.aes256gcm ? 1 : 0;
          out.benchmark = (in.mode & dp::kModeBenchmark) != 0;
          out.checksum_partial = (in.ciphers & dp::kOfferChecksumPartial) != 0;
          if (v6_) out.ipv6_prefix = *v6_;
          out.server_ipv4_be = opt_.tun.address.addr_be;
          out.prefix_len = static_cast<std::uint8_t>(opt_.tun.address.len);
          out.mtu = static_cast<std::uint16_t>(opt_.tun.mtu);
          out.observed_port = m.from.port();  // lets the client tell whether it is behind NAT
          out.observed_digest = address_digest(m.from);
          return true;
        },
        find_key_);
    if (!r) {
      ++rejects_;
      const char* why = reject == HandshakeReject::Decrypt ? "it is not encrypted to this server's key"
                        : reject == HandshakeReject::BadVersion ? "unsupported protocol version"
                        : reject == HandshakeReject::ClientKeyRequired ? "no client key (authorized_clients is set)"
                        : reject == HandshakeReject::ClientKeyRejected
                            ? (authorized_ ? "unknown or revoked client key" : "a client key, but no authorized_clients here")
                        : reject == HandshakeReject::Refused
                            ? (refuse == dp::ErrorCode::ServerFull         ? "the server is full"
                               : refuse == dp::ErrorCode::BenchmarkRefused ? "a benchmark session (not enabled here)"
                               : refuse == dp::ErrorCode::StaleTimestamp
                                   ? "stale timestamp (a replayed initiation, or the client's clock is off)"
                                   : "tunnel address refused")
                                                             : "malformed";
      if (++reject_logs_ <= kRejectLogsPerSecond) spdlog::warn("handshake from {} rejected: {}", m.from.to_string(), why);
      if (reject != HandshakeReject::Malformed && tokens_ > 0) {
        --tokens_;
        const dp::ErrorCode code = reject == HandshakeReject::Decrypt ? dp::ErrorCode::HandshakeFailed
                                   : reject == HandshakeReject::BadVersion ? dp::ErrorCode::BadVersion
                                   : reject == HandshakeReject::ClientKeyRequired ? dp::ErrorCode::ClientKeyRequired
                                   : reject == HandshakeReject::ClientKeyRejected ? dp::ErrorCode::ClientKeyRejected
                                                                                  : refuse;
        const auto err = make_error(static_cast<std::uint32_t>(h.counter), code);
        rt_.uplink(m.uplink).send_to(err.data(), err.size(), m.from);
      }
      return;
    }
    const dp::InitPayload& in = r->init;
    newest_ts_[replay_key(in, r->uplink)] = in.timestamp_ns;
    // A different client run holds the address (the client restarted, or someone else
    // asks for it): this one contends for it and gets it only once confirmed while the
    // holder is silent (confirm_pending); until then nothing of it is delivered.
    auto owner = by_ip_.find(addr);
    const bool contender = owner != by_ip_.end() && owner->second != in.client_id;
    Client& c = clients_[in.client_id];
    if (!c.group) {
      c.group = std::make_unique<dp::Group>();
      c.group->client_id = in.client_id;
      c.group->epoch = epoch;
      c.group->inner_ipv4_be = addr;
      c.group->sink = (in.mode & dp::kModeBenchmark) != 0;  // nothing of it reaches the TUN
      if (c.group->sink && (in.mode & dp::kModeDownload) != 0)
        c.bench_streams = (in.mode >> dp::kModeStreamsShift) + 1u;
      if (contender) c.group->contending.store(true, std::memory_order_relaxed);
      else by_ip_[addr] = in.client_id;
      c.key_id = in.key_id;
      c.key_name = key_name(in.key_id);
      for (const auto& [name, net] : opt_.client_routes)
        if (authorized_ && name == c.key_name && c.group->n_subnets < dp::kMaxClientSubnets)
          c.group->subnets[c.group->n_subnets++] = {net.network_be(), net.mask_be()};
      if (c.group->n_subnets > 0) {
        // The key's networks are this run's at once unless an earlier run of the key
        // (restarted, with a new client id) still has them: then they move when this
        // run's first session is confirmed (claim_subnets), never on an initiation alone.
        c.subnets_claimed = std::none_of(clients_.begin(), clients_.end(), [&](const auto& e) {
          return e.first != in.client_id && e.second.subnets_claimed && e.second.key_name == c.key_name;
        });
        std::string nets;
        for (std::uint8_t i = 0; i < c.group->n_subnets; ++i)
          nets += (i ? ", " : "") +
                  io::Ipv4Prefix{c.group->subnets[i].net_be, __builtin_popcount(c.group->subnets[i].mask_be)}.to_string();
        spdlog::info("client key '{}' routes {} through its tunnel{}", c.key_name, nets,
                     c.subnets_claimed ? "" : " once this run is confirmed and the earlier one silent");
      }
    }
    // A retried initiation replaces a pending session (removed below, once the new one
    // holds the client: removing it first could take the client with it); the active
    // one stays until the new one is confirmed (a rekey must not interrupt traffic).
    const std::uint32_t replaced = c.pending[r->uplink];
    c.pending[r->uplink] = 0;
    const bool rekey = c.index[r->uplink] != 0;
    c.last_ts[r->uplink] = in.timestamp_ns;
    c.newest_ts = std::max(c.newest_ts, in.timestamp_ns);
    auto s = std::make_unique<dp::Session>();
    s->local_index = index;
    s->remote_index = in.sender_index;
    s->uplink = r->uplink;
    s->socket = m.uplink;  // answer on the listening socket the client reached
    s->group = c.group.get();
    const auto cipher = r->answer.cipher == 1 ? crypto::Cipher::Aes256Gcm : crypto::Cipher::ChaCha20Poly1305;
    s->tx_key = crypto::TransportKey(std::move(r->keys.send), cipher);
    s->rx_key = crypto::TransportKey(std::move(r->keys.recv), cipher);
    s->peer_takes_partial = r->answer.checksum_partial;  // the client offered it
    s->set_peer(m.from);
    s->last_rx_ns.store(io::coarse_ns());
    s->established_ns = monotonic_ns();
    // Routed, probed and fed only once an authenticated packet came on it: until then the
    // source address has proven nothing (an initiation can be replayed from anywhere), and
    // all it gets is the response below. A rekey's old session carries on meanwhile.
    c.pending[r->uplink] = index;
    pending_.push_back(index);
    sessions_.emplace(index, std::move(s));
    ++c.handshakes[r->uplink];
    ++handshakes_;
    if (replaced != 0) remove(replaced, /*publish=*/false, /*notify=*/false);
    publish();
    rt_.uplink(m.uplink).send_to(r->response.data(), r->response.size(), m.from);
    if (rekey)
      spdlog::debug("rekey: client {} uplink {} from {} (index {:08x})", io::ipv4_to_string(addr), r->uplink,
                    m.from.to_string(), index);
    else
      spdlog::info("session up: client {} from {} (uplink {}, index {:08x}{}{}) {}{}{}", io::ipv4_to_string(addr),
                   m.from.to_string(), r->uplink, index, authorized_ ? ", key " : "", authorized_ ? c.key_name : "",
                   crypto::cipher_name(cipher), c.group->sink ? ", benchmark session" : "",
                   c.group->contending.load(std::memory_order_relaxed)
                       ? "; the address is another run's until that one falls silent"
                       : "");
  }

  // The workers answer initiations with cookies while under load: said in the log when
  // it starts and ends (checked every second).
  void note_handshake_load() {
    const dp::CounterTotals t = rt_.totals();
    const std::uint64_t cookies = t.get(dp::Counter::TxCookieReplies);
    const bool loaded = cookies != last_cookies_;
    last_cookies_ = cookies;
    if (loaded == was_under_load_) return;
    was_under_load_ = loaded;
    if (loaded)
      spdlog::warn("handshakes under load: initiations must carry a cookie now (cookie replies so far: {})", cookies);
    else
      spdlog::info("handshake load back to normal (cookie replies: {}, rate-limited: {}, bad mac1: {})", cookies,
                   t.get(dp::Counter::DropHandshakeRate), t.get(dp::Counter::DropHandshakeMac));
  }

  std::string key_name(const crypto::ClientKeyId& id) const {
    if (!authorized_) return {};
    const AuthorizedClient* a = authorized_->find(id);
    return a != nullptr ? a->name : crypto::client_key_label(id);
  }

  // Pending sessions whose client has sent an authenticated packet become the uplink's
  // active session (the one they replace keeps decrypting for kGraceNs); those never
  // confirmed go after pending_timeout_ns().
  void confirm_pending() {
    if (pending_.empty()) return;
    const std::int64_t now = monotonic_ns();
    bool changed = false;
    std::vector<std::uint32_t> expired;
    std::erase_if(pending_, [&](std::uint32_t idx) {
      auto it = sessions_.find(idx);
      if (it == sessions_.end()) return true;  // removed meanwhile
      dp::Session* s = it->second.get();
      const bool overdue = now - s->established_ns > pending_timeout_ns();
      if (!s->confirmed.load(std::memory_order_relaxed) || !take_address(s->group->client_id, changed)) {
        if (overdue) expired.push_back(idx);
        return false;
      }
      Client& c = clients_.at(s->group->client_id);
      const unsigned u = s->uplink;
      c.pending[u] = 0;
      if (c.index[u] != 0) {
        if (c.previous[u] != 0) remove(c.previous[u], /*publish=*/false, /*notify=*/false);
        c.previous[u] = c.index[u];
        c.previous_until[u] = now + kGraceNs;
        dp::Session* old = sessions_.at(c.index[u]).get();
        if (prober_.state(old) == dp::HealthState::Down) {  // the uplink came back: measure afresh
          prober_.remove(old);
          prober_.add(s, now);
        } else {
          prober_.rekey(old, s, now);  // a rekey: the path's measurements carry over
        }
      } else {
        prober_.add(s, now);
      }
      if (c.group->n_subnets > 0) claim_subnets(s->group->client_id, changed);
      c.index[u] = idx;
      changed = true;
      return true;
    });
    for (std::uint32_t idx : expired) {
      auto found = sessions_.find(idx);
      if (found == sessions_.end()) continue;  // its client was removed in this round (take_address)
      const dp::Session& s = *found->second;
      const bool proven = s.confirmed.load(std::memory_order_relaxed);
      if (proven)  // confirmed, but the address it asked for stayed with a live run
        spdlog::warn("client {:016x} asked for {}, which another run still uses: its session {:08x} closed",
                     s.group->client_id, io::ipv4_to_string(s.group->inner_ipv4_be), idx);
      else
        spdlog::debug("session {:08x}: no packet from the client within {} s of its handshake: removed", idx,
                      pending_timeout_ns() / 1'000'000'000);
      remove(idx, /*publish=*/false, /*notify=*/proven);  // a Close only to a proven address
      changed = true;
    }
    if (changed) publish();
  }

  // A confirmed session of a client that contends for an address another run holds:
  // the address moves to it once the holder has been silent for kSilentProbes probe
  // intervals (it restarted or went away); a live holder keeps it. True when the client
  // holds its address (now).
  static constexpr int kSilentProbes = 3;
  // How long a session may stay pending: at least kPendingTimeoutNs, and long enough for
  // a contender to see the holder silent for kSilentProbes probe intervals, with a margin.
  std::int64_t pending_timeout_ns() const {
    return std::max(kPendingTimeoutNs, (kSilentProbes + 2) * opt_.probe.interval_ns);
  }
  bool take_address(std::uint64_t cid, bool& changed) {
    Client& c = clients_.at(cid);
    if (!c.group->contending.load(std::memory_order_relaxed)) return true;
    const std::uint32_t addr = c.group->inner_ipv4_be;
    auto owner = by_ip_.find(addr);
    if (owner != by_ip_.end()) {
      if (!silent(clients_.at(owner->second))) return false;
      spdlog::info("client {}: the run that held it has been silent for {} probe intervals; it moves to client {:016x}",
                   io::ipv4_to_string(addr), kSilentProbes, cid);
      remove_client(owner->second, /*notify=*/false);
    }
    by_ip_[addr] = cid;
    c.group->contending.store(false, std::memory_order_relaxed);
    changed = true;
    return true;
  }

  // A confirmed run of a client key takes the key's networks from an earlier run once
  // that run has been silent for kSilentProbes probe intervals (it restarted with a new
  // client id, or went away); the earlier run then goes at once rather than at its idle
  // timeout, so the networks never have two owners, and two live runs of one key do not
  // take them from each other. True when the run holds the networks (now).
  bool claim_subnets(std::uint64_t cid, bool& changed) {
    Client& c = clients_.at(cid);
    if (c.subnets_claimed) return true;
    std::vector<std::uint64_t> stale;
    for (const auto& [id, other] : clients_) {
      if (id == cid || !other.subnets_claimed || other.key_name != c.key_name) continue;
      if (!silent(other)) return false;  // a live run keeps them
      stale.push_back(id);
    }
    for (std::uint64_t id : stale) {
      spdlog::info("client key '{}': its networks move from client {:016x}, silent for {} probe intervals, to the "
                   "newly confirmed {:016x}",
                   c.key_name, id, kSilentProbes, cid);
      remove_client(id, /*notify=*/false);
    }
    if (stale.empty()) spdlog::info("client key '{}': its networks go to the newly confirmed {:016x}", c.key_name, cid);
    c.subnets_claimed = true;
    changed = true;
    return true;
  }

  // Confirmed runs of a client key still waiting for its networks (claim_subnets).
  void claim_waiting_subnets() {
    bool changed = false;
    std::vector<std::uint64_t> waiting;
    for (const auto& [id, c] : clients_)
      if (!c.subnets_claimed && c.group && c.group->n_subnets > 0 &&
          std::any_of(c.index.begin(), c.index.end(), [](std::uint32_t i) { return i != 0; }))
        waiting.push_back(id);
    for (std::uint64_t id : waiting)
      if (clients_.contains(id)) claim_subnets(id, changed);  // an earlier claim may have removed it
    if (changed) publish();
  }

  // Nothing heard from any of the client's sessions for kSilentProbes probe intervals:
  // what an address or a key's networks wait for before they leave a run.
  bool silent(const Client& c) const {
    return last_heard(c) < io::coarse_ns() - kSilentProbes * opt_.probe.interval_ns;
  }

  // When anything last came from any of a client's sessions (io::coarse_ns).
  std::int64_t last_heard(const Client& c) const {
    std::int64_t t = 0;
    for (const auto* a : {&c.index, &c.pending, &c.previous})
      for (std::uint32_t i : *a)
        if (i != 0) t = std::max(t, sessions_.at(i)->last_rx_ns.load(std::memory_order_relaxed));
    return t;
  }

  // An address for a client that asks for one: the one it already has (another of its
  // uplinks handshook first), else the lowest free one of the tunnel prefix (not the
  // network, broadcast or our own address). 0 when the pool is exhausted.
  std::uint32_t assign_address(std::uint64_t client_id) const {
    if (auto it = clients_.find(client_id); it != clients_.end() && it->second.group)
      return it->second.group->inner_ipv4_be;
    const io::Ipv4Prefix& p = opt_.tun.address;
    const std::uint32_t net = __builtin_bswap32(p.network_be());
    const std::uint32_t size = p.len >= 31 ? 0 : (std::uint32_t{1} << (32 - p.len));
    for (std::uint32_t i = 1; i + 1 < size; ++i) {
      const std::uint32_t be = __builtin_bswap32(net + i);
      if (be != p.addr_be && !by_ip_.contains(be)) return be;
    }
    return 0;
  }

  bool address_allowed(std::uint32_t ip_be) const {
    io::Ipv4Prefix p{ip_be, opt_.tun.address.len};
    if (p.network_be() != opt_.tun.address.network_be() || ip_be == opt_.tun.address.addr_be) {
      spdlog::warn("client asked for tunnel address {}, outside {} or the server's own",
                   io::ipv4_to_string(ip_be), opt_.tun.address.to_string());
      return false;
    }
    return true;
  }

  std::uint32_t new_index() {
    for (;;) {
      std::uint32_t v;
      crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&v), sizeof v});
      if (v != 0 && !sessions_.contains(v)) return v;
    }
  }

  // Once a second: idle sessions, sessions not rekeyed within reject_after, and
  // replaced sessions whose grace period is over.
  void sweep() {
    const std::int64_t limit = io::coarse_ns() - std::int64_t{opt_.idle_timeout_s} * 1'000'000'000;
    // A benchmark that sends to a client that went away would load its paths for nothing:
    // such a session goes after kBenchIdleS without a packet (its client probes far more often).
    const std::int64_t bench_limit = io::coarse_ns() - std::int64_t{std::min(opt_.idle_timeout_s, kBenchIdleS)} * 1'000'000'000;
    const std::int64_t now = monotonic_ns();
    const std::int64_t too_old = now - std::int64_t{opt_.reject_after_s} * 1'000'000'000;
    std::vector<std::uint32_t> idle, old, done;
    for (const auto& [cid, c] : clients_) {
      for (unsigned u = 0; u < dp::kMaxUplinks; ++u) {
        if (c.previous[u] != 0 && now >= c.previous_until[u]) done.push_back(c.previous[u]);
        if (c.index[u] == 0) continue;
        const dp::Session& s = *sessions_.at(c.index[u]);
        if (s.last_rx_ns.load(std::memory_order_relaxed) < (c.group->sink ? bench_limit : limit))
          idle.push_back(c.index[u]);
        else if (s.established_ns < too_old && c.pending[u] == 0) old.push_back(c.index[u]);
      }
    }
    for (auto idx : done) remove(idx, /*publish=*/false, /*notify=*/false);
    for (auto idx : idle) {
      const dp::Session& s = *sessions_[idx];
      spdlog::info("session {:08x} (client {}, uplink {}) idle for {} s: removed", idx,
                   io::ipv4_to_string(s.group->inner_ipv4_be), s.uplink,
                   s.group->sink ? std::min(opt_.idle_timeout_s, kBenchIdleS) : opt_.idle_timeout_s);
      remove(idx, /*publish=*/false);
    }
    for (auto idx : old) {
      const dp::Session& s = *sessions_[idx];
      spdlog::warn("session {:08x} (client {}, uplink {}) not rekeyed within {} s: removed", idx,
                   io::ipv4_to_string(s.group->inner_ipv4_be), s.uplink, opt_.reject_after_s);
      remove(idx, /*publish=*/false);
    }
    if (!done.empty() || !idle.empty() || !old.empty()) publish();
  }

  // Unpublishes a session and frees it once no worker can see it; a client left without
  // uplinks goes too. notify: tell the client with a Close, so it handshakes again rather
  // than talking into the void. The Close is sent from the deleter, when no worker can
  // still move `peer`.
  void remove(std::uint32_t idx, bool do_publish = true, bool notify = true) {
    auto it = sessions_.find(idx);
    if (it == sessions_.end()) return;
    dp::Session* s = it->second.release();
    sessions_.erase(it);
    prober_.remove(s);
    const std::uint64_t cid = s->group->client_id;
    Client& c = clients_.at(cid);
    for (auto* slot : {&c.index[s->uplink], &c.pending[s->uplink], &c.previous[s->uplink]})
      if (*slot == idx) *slot = 0;
    auto none = [](const auto& a) { return std::all_of(a.begin(), a.end(), [](std::uint32_t i) { return i == 0; }); };
    const bool last = none(c.index) && none(c.pending) && none(c.previous);
    Runtime* rt = &rt_;
    if (last) {
      dp::Group* g = c.group.release();
      if (auto o = by_ip_.find(g->inner_ipv4_be); o != by_ip_.end() && o->second == cid) by_ip_.erase(o);
      clients_.erase(cid);
      if (do_publish) publish();
      rt_.qsbr().retire([rt, s, g, notify] {
        if (notify) rt->send_transport(*s, dp::PacketType::Close, s->peer_copy());
        delete s;
        delete g;
      });
      return;
    }
    if (do_publish) publish();
    rt_.qsbr().retire([rt, s, notify] {
      if (notify) rt->send_transport(*s, dp::PacketType::Close, s->peer_copy());
      delete s;
    });
  }

  void remove_client(std::uint64_t cid, bool notify) {
    auto it = clients_.find(cid);
    if (it == clients_.end()) return;
    // Only active sessions are announced with a Close (one per uplink).
    std::vector<std::pair<std::uint32_t, bool>> all;
    for (const auto* a : {&it->second.previous, &it->second.pending, &it->second.index})
      for (std::uint32_t i : *a)
        if (i != 0) all.emplace_back(i, a == &it->second.index);
    for (const auto& [i, active] : all) remove(i, /*publish=*/false, notify && active);
  }

  void publish() {
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
      if (c.bench_streams > 0 && !fresh) {  // a benchmark download, once a session is confirmed: the workers send to it
        route->gen = {c.bench_streams, opt_.tun.address.addr_be, c.group->inner_ipv4_be,
                      static_cast<std::uint16_t>(opt_.tun.mtu)};
        snap->generate.push_back(route.get());
      }
      snap->by_inner_ipv4.emplace(c.group->inner_ipv4_be, route.get());
      if (c.subnets_claimed)
        for (std::uint8_t i = 0; i < c.group->n_subnets; ++i) snap->by_subnet.emplace_back(c.group->subnets[i], route.get());
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

  // Probes every client uplink (return traffic needs to know which ones work); health
  // changes are published at once, measurements at least every second.
  void probe() {
    const std::int64_t now = monotonic_ns();
    const bool changed = prober_.tick(now, [this](dp::Session& s, std::uint64_t body) {
      std::uint8_t b[8];
      dp::store_le64(b, body);
      rt_.send_transport(s, dp::PacketType::Ping, s.peer_copy(), b);
    });
    if (changed || (!sessions_.empty() && now - last_publish_ >= 1'000'000'000)) publish();
  }

  const ServerOptions& opt_;
  dp::SchedulerConfig sched_ = opt_.sched;  // SIGHUP may change it
  crypto::KeyPair key_;
  std::optional<std::array<std::uint8_t, 8>> v6_ = ipv6_prefix(opt_.ipv6_prefix, key_.pub);  // the tunnel's /64
  Runtime& rt_;
  StatusServer& ops_;
  const KernelNat* nat_;  // --nat-outbound, for its entry count
  const io::TcpRelay* relay_;  // tcp_fallback, for its connection count
  std::uint64_t handshakes_ = 0;
  std::unordered_map<std::uint32_t, std::unique_ptr<dp::Session>> sessions_;
  std::unordered_map<std::uint64_t, Client> clients_;      // by client id
  std::unordered_map<std::uint32_t, std::uint64_t> by_ip_;  // tunnel address -> the client id holding it
  std::map<ReplayKey, std::uint64_t> newest_ts_;  // newest accepted initiation, beyond a client's life
  std::uint64_t version_ = 0;
  Prober prober_{opt_.probe};
  std::int64_t last_publish_ = 0;
  std::uint64_t rejects_ = 0;
  int tokens_ = kErrorTokens;
  std::vector<std::uint32_t> pending_;  // session indices awaiting their first packet
  std::optional<AuthorizedClients> authorized_;  // set: only these client keys may connect
  std::string stamp_;
  FindClientKey find_key_;
  bool was_under_load_ = false;
  std::uint64_t last_cookies_ = 0;
  unsigned reject_logs_ = 0;
};

}  // namespace

int run_server(const ServerOptions& opt) {
  if (!io::has_net_admin())
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
  for (const auto& e : opt.listen) {                // spreads clients' addresses over workers
    socks.push_back(io::UdpSocket::bind_group(e, tun.workers, {}, opt.socket_buffer));
    for (auto& s : socks.back()) s.attach_filter(dp::server_socket_filter());
  }

  crypto::AuthKey ak;
  ak.server_key = kf.key.pub;
  std::vector<io::Endpoint> adv = opt.advertise;
  if (adv.empty()) {
    for (const auto& a : kf.addresses) {
      std::string err;
      auto e = io::parse_endpoint(a, err);
      if (!e) throw std::runtime_error("key file " + opt.key_file + ": " + err);
      adv.push_back(*e);
    }
  }
  if (adv.empty())  // neither given nor in the key file: where we listen
    for (const auto& l : opt.listen)
      for (const auto& e : l.is_unspecified() ? local_addresses(l) : std::vector<io::Endpoint>{l}) adv.push_back(e);
  for (const auto& e : adv) ak.addresses.push_back(to_authkey_address(e));

  if (opt.generate_key && !have_key && !opt.key_file.empty()) {
    std::vector<std::string> texts;
    for (const auto& e : adv) texts.push_back(e.to_string());
    kf.addresses = texts;
    save_key_file(opt.key_file, kf);
    spdlog::info("new key saved to {}", opt.key_file);
  }

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
    // Errors answer anyone (a wrong key): only other packets show someone who holds the key.
    lim.is_answer = [](const std::uint8_t* d, std::size_t n) {
      return n > 0 && (d[0] & 0x0f) != static_cast<unsigned>(dp::PacketType::Error);
    };
    relay.emplace(lim);
    for (const auto& group : socks) {
      const io::Endpoint at = group.front().local();
      relay->listen(at, at.is_unspecified() ? io::Endpoint::loopback(at.family(), at.port()) : at);  // this host
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
