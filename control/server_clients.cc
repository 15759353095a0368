// The server's clients: initiations and what they may claim (their tunnel address, their
// key's networks), the sessions of each uplink through rekeys, and the sweep of the
// silent ones.
#include "control/server_impl.h"
#include "dataplane/mix.h"

namespace triglav::ctl::server_detail {

bool Server::admissible(const dp::InitPayload& in, std::uint32_t addr, std::uint8_t uplink, dp::ErrorCode& refuse) {
  if (addr == 0) {
    spdlog::warn("client {:016x} asked for an address: the pool {} has none free", in.client_id,
                 opt_.tun.address.to_string());
    return false;
  }
  if (!address_allowed(addr)) {
    if (addr == opt_.tun.address.addr_be) refuse = dp::ErrorCode::AddressIsServers;
    return false;
  }
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

void Server::on_initiation(const dp::ControlMessage& m) {
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
        index = new_index(in.client_id);
        out.sender_index = index;
        out.cipher = (in.ciphers & dp::kOfferAes256Gcm) != 0 && opt_.aes256gcm ? 1 : 0;
        out.benchmark = (in.mode & dp::kModeBenchmark) != 0;
        out.checksum_partial = (in.ciphers & dp::kOfferChecksumPartial) != 0;
        out.striped = (in.ciphers & dp::kOfferStriped) != 0;
        out.fragments = (in.ciphers & dp::kOfferFragments) != 0;
        out.repair = (in.ciphers & dp::kOfferRepair) != 0;
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
                             : refuse == dp::ErrorCode::AddressIsServers ? "it asked for the server's own tunnel address"
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
  s->peer_takes_striped = r->answer.striped;
  s->peer_takes_fragments = r->answer.fragments;
  s->peer_takes_repair = r->answer.repair;
  s->set_peer(m.from);
  s->established_ns = monotonic_ns();
  s->last_rx_ns.store(s->established_ns);
  // Routed, probed and fed only once an authenticated packet came on it: until then the
  // source address has proven nothing (an initiation can be replayed from anywhere), and
  // all it gets is the response below. A rekey's old session carries on meanwhile.
  c.pending[r->uplink] = index;
  pending_.push_back(index);
  sessions_.emplace(index, std::move(s));
  ++c.handshakes[r->uplink];
  ++handshakes_;
  if (replaced != 0) remove(replaced, /*publish=*/false, /*notify=*/false);
  // Answered once the session is published: with the turn's other handshakes, in one
  // rebuild (a join storm would otherwise rebuild the whole table for each client).
  publish_soon();
  answers_.push_back({m.uplink, r->response, m.from});
  if (answers_.size() >= kAnswerBatch) flush_answers();
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

void Server::note_handshake_load() {
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

std::string Server::key_name(const crypto::ClientKeyId& id) const {
  if (!authorized_) return {};
  const AuthorizedClient* a = authorized_->find(id);
  return a != nullptr ? a->name : crypto::client_key_label(id);
}

void Server::confirm_pending() {
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

bool Server::take_address(std::uint64_t cid, bool& changed) {
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

bool Server::claim_subnets(std::uint64_t cid, bool& changed) {
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

void Server::claim_waiting_subnets() {
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

std::int64_t Server::last_heard(const Client& c) const {
  std::int64_t t = 0;
  for (const auto* a : {&c.index, &c.pending, &c.previous})
    for (std::uint32_t i : *a)
      if (i != 0) t = std::max(t, sessions_.at(i)->last_rx_ns.load(std::memory_order_relaxed));
  return t;
}

std::uint32_t Server::assign_address(std::uint64_t client_id) const {
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

bool Server::address_allowed(std::uint32_t ip_be) const {
  io::Ipv4Prefix p{ip_be, opt_.tun.address.len};
  if (p.network_be() != opt_.tun.address.network_be() || ip_be == opt_.tun.address.addr_be) {
    spdlog::warn("client asked for tunnel address {}, outside {} or the server's own",
                 io::ipv4_to_string(ip_be), opt_.tun.address.to_string());
    return false;
  }
  return true;
}

// A receiver index for a session of the client: random, but with a low byte the same
// for all of one client's sessions (from its id and a secret of this run), so that what
// one of its workers sends reaches one of ours on every uplink (dp::steering_program),
// while clients spread over the workers.
std::uint32_t Server::new_index(std::uint64_t client_id) {
  const std::uint32_t low = static_cast<std::uint32_t>(dp::mix64(client_id ^ index_secret_)) & 0xffu;
  for (;;) {
    std::uint32_t v;
    crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&v), sizeof v});
    v = (v & ~0xffu) | low;
    if (v != 0 && !sessions_.contains(v)) return v;
  }
}

void Server::sweep() {
  // Workers stamp last_rx_ns with the same clock (io/clock.h).
  const std::int64_t now = monotonic_ns();
  const std::int64_t limit = now - std::int64_t{opt_.idle_timeout_s} * 1'000'000'000;
  // A benchmark that sends to a client that went away would load its paths for nothing:
  // such a session goes after kBenchIdleS without a packet (its client probes far more often).
  const std::int64_t bench_limit = now - std::int64_t{std::min(opt_.idle_timeout_s, kBenchIdleS)} * 1'000'000'000;
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

void Server::remove(std::uint32_t idx, bool do_publish, bool notify) {
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

void Server::remove_client(std::uint64_t cid, bool notify) {
  auto it = clients_.find(cid);
  if (it == clients_.end()) return;
  // Only active sessions are announced with a Close (one per uplink).
  std::vector<std::pair<std::uint32_t, bool>> all;
  for (const auto* a : {&it->second.previous, &it->second.pending, &it->second.index})
    for (std::uint32_t i : *a)
      if (i != 0) all.emplace_back(i, a == &it->second.index);
  for (const auto& [i, active] : all) remove(i, /*publish=*/false, notify && active);
}

}  // namespace triglav::ctl::server_detail
