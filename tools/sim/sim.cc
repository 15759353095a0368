#include "tools/sim/sim.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>
#include <queue>
#include <random>
#include <unordered_map>

#include "dataplane/replay_window.h"
#include "dataplane/flow.h"
#include "dataplane/reorder.h"
#include "dataplane/stripe.h"
#include "dataplane/snapshot.h"
#include "dataplane/wire.h"

namespace triglav::sim {
namespace {

constexpr std::int64_t kTickNs = 20'000'000;       // the control loops' period
constexpr std::int64_t kPublishNs = 1'000'000'000;  // measurements re-published at least this often
constexpr std::int64_t kRetryNs = 1'000'000'000;    // handshake retransmission
constexpr std::int64_t kWarmupNs = 1'000'000'000;  // from the client's start to the first packet
constexpr std::int64_t kDrainNs = 2'000'000'000;    // after the last send, for packets in flight
constexpr std::size_t kIpUdp = 28;
constexpr std::size_t kProbeWire = dp::kHeaderLen + 8 + dp::kTagLen + kIpUdp;

enum class Kind : std::uint8_t { Send, Tick, Data, Ping, Pong, Init, Response, Expire };

struct Event {
  std::int64_t t = 0;
  std::uint64_t order = 0;  // ties break in scheduling order: deterministic
  Kind kind = Kind::Tick;
  std::uint8_t side = 0;    // Send: the sender; arrivals: the receiving side
  std::uint8_t uplink = 0;
  std::uint32_t flow = 0;
  std::uint32_t to_index = 0;  // the receiver's session index the packet is addressed to
  std::uint32_t from_index = 0;
  std::uint32_t seq = 0;
  std::uint64_t k = 0;      // Data: the packet's number in its flow; Ping/Pong: the body
  std::uint32_t flow_seq = 0;  // Data of a striped flow (aggregate): its flow sequence number
  bool striped = false;
  // Session packets (Data, Ping, Pong): their number on the session, as the AEAD counter
  // numbers them; a second copy the link made is not counted again (the replay window).
  std::uint64_t ordinal = 0;
  bool copy = false;
  // Pong: the pinged side's packet counts and clock (docs/PROTOCOL.md).
  std::uint64_t received = 0, expected = 0;
  std::int64_t answered_ns = 0;
  bool operator>(const Event& o) const noexcept { return t != o.t ? t > o.t : order > o.order; }
};

enum : std::uint8_t { kClient = 0, kServer = 1 };

struct Flow {
  std::uint64_t hash = 0;
  std::int64_t first_ns = 0;
  std::int64_t newest = -1;  // the highest packet number delivered
  std::vector<std::int64_t> latency_ns;  // per packet; -1 while not delivered
};

struct Side {
  ctl::Prober prober;
  dp::Scheduler sched;
  dp::FlowTable flows{64};
  std::array<std::unique_ptr<dp::Session>, dp::kMaxUplinks> sess{};
  dp::DedupWindow dedup;  // the other side's sequence numbers
  std::uint32_t next_seq = 0;
  std::int64_t last_publish_ns = -kPublishNs;
  std::vector<Flow> app;
  // Client only: the handshake in progress per uplink (0: none) and when to send again.
  std::array<std::uint32_t, dp::kMaxUplinks> hs_index{};
  std::array<std::int64_t, dp::kMaxUplinks> next_try{};
  // Strategy aggregate: the sender's striper and flow sequence numbers (by app flow),
  // the receiver's reorder buffer, the wait its gaps get, and its next expiry event.
  dp::Striper stripe;
  std::vector<std::uint32_t> flow_seq;
  dp::Reorder reorder{reorder_config()};
  std::int64_t reorder_wait_ns = dp::kDefaultReorderWaitNs;
  dp::UplinkMask live = 0;  // uplinks with a session that is not Down (as make_route sets it)
  std::int64_t expire_at = -1;

  Side(const SimConfig& cfg) : prober(cfg.probe), sched(cfg.sched) {}
  static dp::ReorderConfig reorder_config() {
    dp::ReorderConfig c;
    c.slots = 1024;
    c.slot_bytes = 16;  // a held packet is its (flow, number): what the simulation needs back
    c.flows = 64;
    c.senders = 4;
    return c;
  }
};

class Sim {
 public:
  Sim(const linkem::Scenario& sc, const SimConfig& cfg)
      : sc_(sc), cfg_(cfg), rng_(cfg.seed), client_(cfg), server_(cfg) {
    n_ = std::min<std::size_t>(sc.links.size(), dp::kMaxUplinks);
    end_ns_ = cfg.duration_ns > 0 ? cfg.duration_ns : sc.duration_ns;
    interval_ns_ = static_cast<std::int64_t>(1e9 / cfg.flow_pps);
    for (std::size_t i = 0; i < n_; ++i) {
      up_.emplace_back(rng_());
      down_.emplace_back(rng_());
    }
    // The client starts at a random point of the first second, so that probes do not
    // fall at the same phase of the scenario's round-second events in every run; the
    // applications start sending a second later, once the uplinks are up.
    const std::int64_t start = static_cast<std::int64_t>(rng_() % 1'000'000'000);
    for (Side* s : {&client_, &server_}) {
      s->app.resize(cfg.flows);
      for (unsigned f = 0; f < cfg.flows; ++f) {
        s->app[f].hash = rng_() | 1;
        s->app[f].first_ns = start + kWarmupNs + static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(interval_ns_));
        s->app[f].latency_ns.reserve(static_cast<std::size_t>(end_ns_ / interval_ns_) + 2);
        push({.t = s->app[f].first_ns, .kind = Kind::Send, .side = s == &client_ ? kClient : kServer,
              .flow = f});
      }
    }
    client_.next_try.fill(start);
    push({.t = start % kTickNs, .kind = Kind::Tick});
  }

  RunResult run() {
    while (!q_.empty()) {
      const Event e = q_.top();
      q_.pop();
      now_ = e.t;
      switch (e.kind) {
        case Kind::Send: on_send(e); break;
        case Kind::Tick: on_tick(); break;
        case Kind::Data: on_data(e); break;
        case Kind::Ping: on_ping(e); break;
        case Kind::Pong: on_pong(e); break;
        case Kind::Init: on_init(e); break;
        case Kind::Response: on_response(e); break;
        case Kind::Expire: on_expire(e); break;
      }
    }
    finish();
    return r_;
  }

 private:
  void push(Event e) {
    e.order = order_++;
    q_.push(e);
  }

  Side& side(std::uint8_t s) { return s == kClient ? client_ : server_; }

  // Puts a packet of `bytes` on uplink u in the direction away from side `from`; each
  // copy the link delivers becomes an arrival event at the other side.
  void transmit(std::uint8_t from, std::size_t u, std::size_t bytes, Event e) {
    const bool up = from == kClient;
    linkem::Direction& d = up ? up_[u] : down_[u];
    d.set_params(sc_.links[u].at(now_, up));
    const linkem::Verdict v = d.on_packet(now_, bytes);
    e.side = up ? kServer : kClient;
    e.uplink = static_cast<std::uint8_t>(u);
    if (e.kind == Kind::Data || e.kind == Kind::Ping || e.kind == Kind::Pong)
      e.ordinal = counts_[session_key(e.side, e.to_index)].sent++;
    for (int c = 0; c < v.copies; ++c) {
      e.t = v.deliver_ns[c];
      e.copy = c > 0;
      push(e);
    }
  }

  // Per receiving session (side, index): packets sent to it, received, and the highest
  // number received, for the Pong's counts.
  struct Counts {
    std::uint64_t sent = 0, received = 0, expected = 0;
  };
  static std::uint64_t session_key(std::uint8_t side, std::uint32_t index) {
    return std::uint64_t{side} << 32 | index;
  }
  void count_arrival(const Event& e) {
    if (e.copy) return;
    Counts& c = counts_[session_key(e.side, e.to_index)];
    ++c.received;
    c.expected = std::max(c.expected, e.ordinal + 1);
  }

  void publish(Side& s) {
    std::array<dp::UplinkView, dp::kMaxUplinks> views{};
    for (std::size_t u = 0; u < n_; ++u) {
      if (s.sess[u]) {
        views[u] = s.prober.view(s.sess[u].get());
      } else {
        views[u].state = dp::HealthState::Down;
      }
      views[u].id = static_cast<std::uint8_t>(u);
      views[u].weight = u < cfg_.weights.size() ? cfg_.weights[u] : 1.0;
    }
    s.sched.update({views.data(), n_}, now_);
    s.stripe.update({views.data(), n_});
    s.reorder_wait_ns = dp::reorder_wait_ns(views);
    s.live = dp::live_uplinks({views.data(), n_});
    s.last_publish_ns = now_;
  }

  void on_send(const Event& e) {
    Side& s = side(e.side);
    Flow& f = s.app[e.flow];
    const std::uint64_t k = f.latency_ns.size();
    f.latency_ns.push_back(-1);
    ++r_.sent;
    const std::uint32_t seq = s.next_seq++;
    if (cfg_.sched.strategy == dp::Strategy::Aggregate) {
      send_striped(e, s, seq, k);
    } else {
      send_routed(e, s, f, seq, k);
    }
    const std::int64_t next = now_ + interval_ns_;
    if (next < end_ns_) push({.t = next, .kind = Kind::Send, .side = e.side, .flow = e.flow});
  }

  // aggregate: the packet to the uplink where it arrives first, with its flow sequence.
  void send_striped(const Event& e, Side& s, std::uint32_t seq, std::uint64_t k) {
    dp::UplinkMask allowed = 0;
    for (std::size_t u = 0; u < n_; ++u)
      if (s.sess[u] && (s.sched.usable_mask() >> u & 1)) allowed |= dp::UplinkMask{1} << u;
    const std::size_t wire = cfg_.payload + dp::kDataOverhead + dp::kFlowSeqLen + kIpUdp;
    const int u = s.stripe.pick(allowed, wire, now_);
    if (u < 0) return;
    if (s.flow_seq.size() < s.app.size()) s.flow_seq.resize(s.app.size());
    dp::Session* ss = s.sess[static_cast<std::size_t>(u)].get();
    ss->tx.get(0)->bytes.fetch_add(cfg_.payload, std::memory_order_relaxed);
    r_.data_bytes += cfg_.payload;
    transmit(e.side, static_cast<std::size_t>(u), wire,
             {.kind = Kind::Data, .flow = e.flow, .to_index = ss->remote_index, .seq = seq, .k = k,
              .flow_seq = s.flow_seq[e.flow]++, .striped = true});
  }

  void send_routed(const Event& e, Side& s, const Flow& f, std::uint32_t seq, std::uint64_t k) {
    dp::UplinkMask m = s.flows.route(f.hash, now_, s.sched);
    while (m != 0) {
      const unsigned u = static_cast<unsigned>(std::countr_zero(m));
      m &= m - 1;
      dp::Session* ss = u < n_ ? s.sess[u].get() : nullptr;
      if (ss == nullptr) continue;
      ss->tx.get(0)->bytes.fetch_add(cfg_.payload, std::memory_order_relaxed);
      r_.data_bytes += cfg_.payload;
      transmit(e.side, u, cfg_.payload + dp::kDataOverhead + kIpUdp,
               {.kind = Kind::Data, .flow = e.flow, .to_index = ss->remote_index, .seq = seq, .k = k});
    }
  }

  void on_tick() {
    for (std::uint8_t id : {kClient, kServer}) {
      Side& s = side(id);
      bool changed = s.prober.tick(now_, [&](dp::Session& ss, std::uint64_t body) {
        ++r_.probe_packets;
        transmit(id, ss.uplink, kProbeWire,
                 {.kind = Kind::Ping, .to_index = ss.remote_index, .from_index = ss.local_index, .k = body});
      });
      if (id == kClient) changed |= client_handshakes();
      if (changed || now_ - s.last_publish_ns >= kPublishNs) publish(s);
    }
    if (now_ + kTickNs <= end_ns_ + kDrainNs) push({.t = now_ + kTickNs, .kind = Kind::Tick});
  }

  // The client drops an uplink whose probes went unanswered until Down and handshakes it
  // again; (re)sends initiations that are due. True if a session went away.
  bool client_handshakes() {
    bool changed = false;
    for (std::size_t u = 0; u < n_; ++u) {
      auto& ss = client_.sess[u];
      if (ss && client_.prober.state(ss.get()) == dp::HealthState::Down) {
        client_.prober.remove(ss.get());
        ss.reset();
        client_.next_try[u] = now_;
        changed = true;
      }
      if (!ss && now_ >= client_.next_try[u] && now_ < end_ns_) {
        client_.hs_index[u] = next_index_++;
        client_.next_try[u] = now_ + kRetryNs;
        transmit(kClient, u, dp::kInitLen + kIpUdp, {.kind = Kind::Init, .from_index = client_.hs_index[u]});
      }
    }
    return changed;
  }

  std::unique_ptr<dp::Session> new_session(std::size_t u, std::uint32_t local, std::uint32_t remote) {
    auto ss = std::make_unique<dp::Session>();
    ss->local_index = local;
    ss->remote_index = remote;
    ss->uplink = static_cast<std::uint8_t>(u);
    return ss;
  }

  void on_init(const Event& e) {  // at the server: a new session replaces the uplink's old one
    auto& ss = server_.sess[e.uplink];
    if (ss) server_.prober.remove(ss.get());
    ss = new_session(e.uplink, next_index_++, e.from_index);
    server_.prober.add(ss.get(), now_);
    publish(server_);
    transmit(kServer, e.uplink, dp::kResponseLen + kIpUdp,
             {.kind = Kind::Response, .to_index = e.from_index, .from_index = ss->local_index});
  }

  void on_response(const Event& e) {  // at the client
    auto& ss = client_.sess[e.uplink];
    if (ss || client_.hs_index[e.uplink] != e.to_index) return;  // stale answer
    ss = new_session(e.uplink, e.to_index, e.from_index);
    client_.hs_index[e.uplink] = 0;
    client_.prober.add(ss.get(), now_);
    ++r_.handshakes;
    publish(client_);
  }

  dp::Session* addressed(Side& s, const Event& e) {
    dp::Session* ss = s.sess[e.uplink].get();
    return ss != nullptr && ss->local_index == e.to_index ? ss : nullptr;
  }

  void on_ping(const Event& e) {
    dp::Session* ss = addressed(side(e.side), e);
    if (ss == nullptr) return;
    count_arrival(e);
    ++r_.probe_packets;
    const Counts& c = counts_[session_key(e.side, e.to_index)];
    transmit(e.side, e.uplink, kProbeWire,
             {.kind = Kind::Pong, .to_index = ss->remote_index, .k = e.k, .received = c.received,
              .expected = c.expected, .answered_ns = now_});
  }

  void on_pong(const Event& e) {
    Side& s = side(e.side);
    if (addressed(s, e) == nullptr) return;
    count_arrival(e);
    if (s.prober.on_pong(e.to_index, e.k, now_, std::nullopt, ctl::Prober::PeerPackets{e.received, e.expected},
                         e.answered_ns))
      publish(s);
  }

  void on_data(const Event& e) {
    Side& s = side(e.side);
    if (addressed(s, e) == nullptr) return;
    count_arrival(e);
    if (!s.dedup.check_and_update(e.seq)) return;
    if (!e.striped) return deliver(e.side, e.flow, e.k);
    // Striped: through the receiver's reorder buffer, as the worker does.
    std::uint8_t bytes[12];
    std::memcpy(bytes, &e.flow, 4);
    std::memcpy(bytes + 4, &e.k, 8);
    dp::Reorder::Packet p;
    p.uplink = e.uplink;
    p.send_seq = e.seq;
    p.flow_seq = e.flow_seq;
    p.flow = e.flow + 1;
    p.data = bytes;
    p.len = sizeof bytes;
    p.uplinks = s.live;
    switch (s.reorder.offer(p, s.reorder_wait_ns, now_)) {
      case dp::Reorder::Verdict::Deliver:
        deliver(e.side, e.flow, e.k);
        release(e.side);
        break;
      case dp::Reorder::Verdict::DrainFirst:
        release(e.side);
        deliver(e.side, e.flow, e.k);
        break;
      case dp::Reorder::Verdict::Held:
        release(e.side);
        break;
      case dp::Reorder::Verdict::Duplicate:
        break;
    }
    arm_expiry(e.side);
  }

  // What the reorder buffer let go, delivered now, in order.
  void release(std::uint8_t at) {
    Side& s = side(at);
    s.reorder.drain([&](const dp::Reorder::Ready& x) {
      std::uint32_t flow = 0;
      std::uint64_t k = 0;
      std::memcpy(&flow, x.data, 4);
      std::memcpy(&k, x.data + 4, 8);
      deliver(at, flow, k);
      s.reorder.free_slot(x.slot);
    });
  }

  // An event at the first gap's deadline while packets wait (the worker's timed wait).
  void arm_expiry(std::uint8_t at) {
    Side& s = side(at);
    if (s.reorder.held() == 0) return;
    const std::int64_t t = std::max(now_, s.reorder.next_deadline());
    if (s.expire_at >= now_ && s.expire_at <= t) return;
    s.expire_at = t;
    push({.t = t, .kind = Kind::Expire, .side = at});
  }

  void on_expire(const Event& e) {
    Side& s = side(e.side);
    if (s.expire_at != now_) return;  // superseded by an earlier one
    s.expire_at = -1;
    s.reorder.expire(now_);
    release(e.side);
    arm_expiry(e.side);
  }

  void deliver(std::uint8_t at, std::uint32_t flow, std::uint64_t k) {
    Flow& f = side(at == kClient ? kServer : kClient).app[flow];
    const std::int64_t sent = f.first_ns + static_cast<std::int64_t>(k) * interval_ns_;
    f.latency_ns[k] = now_ - sent;
    if (static_cast<std::int64_t>(k) < f.newest) ++r_.out_of_order;
    f.newest = std::max(f.newest, static_cast<std::int64_t>(k));
    ++r_.delivered;
    r_.delivered_bytes += cfg_.payload;
    if (now_ - sent <= cfg_.deadline_ns) ++r_.on_time;
  }

  // Disruptions: runs of packets of one flow that never arrived.
  void finish() {
    for (Side* s : {&client_, &server_}) {
      for (const Flow& f : s->app) {
        std::int64_t start = -1;
        for (std::size_t k = 0; k <= f.latency_ns.size(); ++k) {
          const bool last = k == f.latency_ns.size();
          const std::int64_t t = last ? end_ns_ : f.first_ns + static_cast<std::int64_t>(k) * interval_ns_;
          const bool ok = !last && f.latency_ns[k] >= 0;
          if (!ok && !last && start < 0) start = t;
          if ((ok || last) && start >= 0) {
            if (t - start >= cfg_.disruption_min_ns) r_.disruptions_ms.push_back(static_cast<double>(t - start) / 1e6);
            start = -1;
          }
        }
      }
    }
  }

  const linkem::Scenario& sc_;
  const SimConfig& cfg_;
  std::mt19937_64 rng_;
  std::size_t n_ = 0;
  std::int64_t end_ns_ = 0, interval_ns_ = 0, now_ = 0;
  std::vector<linkem::Direction> up_, down_;
  Side client_, server_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> q_;
  std::uint64_t order_ = 0;
  std::uint32_t next_index_ = 1;
  std::unordered_map<std::uint64_t, Counts> counts_;
  RunResult r_;
};

}  // namespace

void RunResult::add(const RunResult& o) {
  sent += o.sent;
  delivered += o.delivered;
  on_time += o.on_time;
  data_bytes += o.data_bytes;
  delivered_bytes += o.delivered_bytes;
  probe_packets += o.probe_packets;
  handshakes += o.handshakes;
  out_of_order += o.out_of_order;
  disruptions_ms.insert(disruptions_ms.end(), o.disruptions_ms.begin(), o.disruptions_ms.end());
}

RunResult run(const linkem::Scenario& sc, const SimConfig& cfg) { return Sim(sc, cfg).run(); }

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace triglav::sim
