// The server's control thread, private to control/server*.cc: one class whose members
// are defined by topic. server.cc: the loop, control messages, status, reloads, probes
// and publishing the snapshot; server_clients.cc: initiations and what they may claim,
// clients and their sessions, tunnel addresses and networks, the sweep.
#pragma once

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
#include "control/runtime.h"
#include "control/server.h"
#include "control/status_server.h"

namespace triglav::ctl::server_detail {

// The tunnel's IPv6 /64 from --ipv6-prefix ("auto": derived from the server key).
std::optional<std::array<std::uint8_t, 8>> ipv6_prefix(const std::string& text, const crypto::PublicKey& pub);

class Server final : public ControlLoop {
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

  int run();

 private:
  static constexpr int kErrorTokens = 10;  // Error packets per second at most
  static constexpr unsigned kRejectLogsPerSecond = 5;
  // A replaced session keeps decrypting this long (packets in flight, the client's
  // switch to the new keys); a pending one that never hears from its client goes.
  static constexpr std::int64_t kGraceNs = 10'000'000'000;
  static constexpr std::int64_t kPendingTimeoutNs = 10'000'000'000;

  // What `triglav status` and the metrics show: every client and its uplinks.
  Status status() const override;

  // SIGHUP: the scheduler settings from the configuration, published at once.
  void reload() override;

  // authorized_clients again when it changed (checked every second) or on SIGHUP: the
  // sessions of a key no longer in it end at once. A list that does not load is
  // reported and the previous one stays in force.
  void reread_authorized(bool force);

  void log_counters() override {
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
    Runtime::StripeTold stripe_told;  // what the client was last told we stripe over
  };

  void on_message(const dp::ControlMessage& m) override;

  // A client's Control message, authenticated on one of its sessions. UplinkDown: the
  // named uplink's session is Down at once, so return traffic leaves it now.
  // StripeUplinks: the uplinks the client stripes over, for the reorder buffer.
  void on_control(const dp::ControlMessage& m);

  // May this initiation (already authenticated) create or replace a session?
  bool admissible(const dp::InitPayload& in, std::uint32_t addr, std::uint8_t uplink, dp::ErrorCode& refuse);

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

  void on_initiation(const dp::ControlMessage& m);

  // The workers answer initiations with cookies while under load: said in the log when
  // it starts and ends (checked every second).
  void note_handshake_load();

  std::string key_name(const crypto::ClientKeyId& id) const;

  // Pending sessions whose client has sent an authenticated packet become the uplink's
  // active session (the one they replace keeps decrypting for kGraceNs); those never
  // confirmed go after pending_timeout_ns().
  void confirm_pending();

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
  bool take_address(std::uint64_t cid, bool& changed);

  // A confirmed run of a client key takes the key's networks from an earlier run once
  // that run has been silent for kSilentProbes probe intervals (it restarted with a new
  // client id, or went away); the earlier run then goes at once rather than at its idle
  // timeout, so the networks never have two owners, and two live runs of one key do not
  // take them from each other. True when the run holds the networks (now).
  bool claim_subnets(std::uint64_t cid, bool& changed);

  // Confirmed runs of a client key still waiting for its networks (claim_subnets).
  void claim_waiting_subnets();

  // Nothing heard from any of the client's sessions for kSilentProbes probe intervals:
  // what an address or a key's networks wait for before they leave a run.
  bool silent(const Client& c) const {
    return last_heard(c) < io::monotonic_ns() - kSilentProbes * opt_.probe.interval_ns;
  }

  // When anything last came from any of a client's sessions (io::monotonic_ns).
  std::int64_t last_heard(const Client& c) const;

  // An address for a client that asks for one: the one it already has (another of its
  // uplinks handshook first), else the lowest free one of the tunnel prefix (not the
  // network, broadcast or our own address). 0 when the pool is exhausted.
  std::uint32_t assign_address(std::uint64_t client_id) const;

  bool address_allowed(std::uint32_t ip_be) const;

  std::uint32_t new_index(std::uint64_t client_id);
  const std::uint64_t index_secret_ = crypto::random_u64();

  // Once a second: idle sessions, sessions not rekeyed within reject_after, and
  // replaced sessions whose grace period is over.
  void sweep();

  // Unpublishes a session and frees it once no worker can see it; a client left without
  // uplinks goes too. notify: tell the client with a Close, so it handshakes again rather
  // than talking into the void. The Close is sent from the deleter, when no worker can
  // still move `peer`.
  void remove(std::uint32_t idx, bool do_publish = true, bool notify = true);

  void remove_client(std::uint64_t cid, bool notify);

  void publish();
  // A publish that may wait for the end of the turn's messages (or the next batch of
  // handshake answers), so that a storm of events costs one rebuild, not one each.
  void publish_soon() noexcept { publish_due_ = true; }
  void after_messages() override { flush_answers(); }
  // Publishes what is due, then sends the handshake answers held for it (a client's
  // first packet on a session must find it published).
  void flush_answers();

  // Probes every client uplink (return traffic needs to know which ones work); health
  // changes are published at once, measurements at least every second.
  void probe();

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
  bool publish_due_ = false;
  // Handshake responses waiting for the publish of their sessions: at most kAnswerBatch.
  struct Answer {
    unsigned socket;
    std::array<std::uint8_t, dp::kResponseLen> bytes;
    io::Endpoint to;
  };
  std::vector<Answer> answers_;
  static constexpr std::size_t kAnswerBatch = 64;
  static constexpr std::int64_t kStripePublishNs = 250'000'000;
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

}  // namespace triglav::ctl::server_detail
