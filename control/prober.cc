#include "control/prober.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace triglav::ctl {

namespace {
constexpr std::int64_t kFirstProbeDelayNs = 100'000'000;
constexpr std::int64_t kMinRateSampleNs = 200'000'000;  // delivered-rate samples at least this apart
// Loss over a handful of probes says little: one lost probe of one is "100 %". The loss
// floors of the health state apply once the window holds this many outcomes.
constexpr unsigned kMinLossSamples = dp::PathStats::kLossWindow / 2;

double loss_for_health(const dp::PathStats& s) {
  return s.samples() >= kMinLossSamples ? s.loss() : 0.0;
}

std::uint64_t tx_bytes(const dp::Session& s) {
  std::uint64_t n = 0;
  s.tx.for_each([&n](const dp::SenderState& t) { n += t.bytes.load(std::memory_order_relaxed); });
  return n;
}

std::uint64_t tx_packets(const dp::Session& s, bool copies) {
  std::uint64_t n = 0;
  s.tx.for_each([&](const dp::SenderState& t) { n += (copies ? t.copies : t.packets).load(std::memory_order_relaxed); });
  return n;
}
}  // namespace

void Prober::add(dp::Session* s, std::int64_t now_ns, std::int64_t first_probe_ns) {
  Path p;
  p.session = s;
  // Probe soon (the first answer makes the uplink Healthy), but not before the peer can
  // have installed the session the handshake response creates.
  p.next_probe_ns = now_ns + (first_probe_ns >= 0 ? first_probe_ns : kFirstProbeDelayNs);
  p.last_bytes = p.probe_bytes = tx_bytes(*s);  // bytes_before is 0: total_tx
  p.last_bytes_ns = now_ns;
  paths_[s->local_index] = p;
}

void Prober::remove(const dp::Session* s) {
  paths_.erase(s->local_index);
  aliases_.erase(s->local_index);
  std::erase_if(aliases_, [s](const auto& a) { return a.second == s->local_index; });
}

void Prober::excuse_lost(const dp::Session* s, std::uint64_t n) {
  if (Path* p = find(s->local_index)) p->excused += n;
}

void Prober::rekey(const dp::Session* old, dp::Session* next, std::int64_t now_ns) {
  auto it = paths_.find(old->local_index);
  if (it == paths_.end()) {
    add(next, now_ns);
    return;
  }
  Path p = it->second;
  paths_.erase(it);
  p.bytes_before += tx_bytes(*old);
  p.packets_before += tx_packets(*old, false);
  p.copies_before += tx_packets(*old, true);
  p.rx_before += old->rx_bytes.load(std::memory_order_relaxed);
  p.session = next;
  p.delivered_before += p.peer_rx;
  p.peer_rx = 0;
  p.peer_rx_ns = -1;  // the peer's received-bytes count restarts with the session
  p.peer_packets.reset();  // and so do its packet counts
  paths_[next->local_index] = p;
  std::erase_if(aliases_, [old](const auto& a) { return a.second == old->local_index; });
  aliases_[old->local_index] = next->local_index;
}

std::uint64_t Prober::total_tx(const Path& p) { return p.bytes_before + tx_bytes(*p.session); }

Prober::Path* Prober::find(std::uint32_t local_index) {
  auto it = paths_.find(local_index);
  if (it != paths_.end()) return &it->second;
  auto a = aliases_.find(local_index);
  if (a == aliases_.end()) return nullptr;
  it = paths_.find(a->second);
  return it == paths_.end() ? nullptr : &it->second;
}

std::int64_t Prober::timeout_ns(const Path& p) const {
  return static_cast<std::int64_t>(std::max(cfg_.min_timeout_ms, p.stats.rto_ms(cfg_.min_timeout_ms)) * 1e6);
}

void Prober::reschedule(Path& p, std::int64_t now_ns) {
  std::int64_t wait = cfg_.interval_ns;
  if (p.health.state() != dp::HealthState::Healthy) wait = cfg_.fast_interval_ns;
  else if (p.busy) wait = std::min(cfg_.busy_interval_ns, cfg_.interval_ns);
  p.next_probe_ns = now_ns + wait;
}

void Prober::note_state(Path& p, dp::HealthState before, std::int64_t now_ns) {
  const dp::HealthState now = p.health.state();
  if (now == dp::HealthState::Healthy && before != dp::HealthState::Healthy) p.healthy_since_ns = now_ns;
  if (now != dp::HealthState::Healthy) p.healthy_since_ns = -1;
}

bool Prober::tick(std::int64_t now_ns, const std::function<void(dp::Session&, std::uint64_t)>& send) {
  bool changed = false;
  for (auto& [idx, p] : paths_) {
    if (p.outstanding && now_ns - static_cast<std::int64_t>(p.sent_ns) > timeout_ns(p)) {
      const dp::HealthState before = p.health.state();
      p.outstanding = false;
      p.stats.on_probe_result(false);
      p.health.on_failure();
      p.health.on_metrics(loss_for_health(p.stats), p.stats.has_rtt() ? p.stats.srtt_ms() : -1);
      note_state(p, before, now_ns);
      // The first failure too: striping leaves a suspect uplink at once (UplinkView::suspect).
      changed |= p.health.state() != before || p.health.consecutive_failures() == 1;
      p.next_probe_ns = now_ns;  // a failure: probe again at once, then fast
    }
    changed |= update_lossy(p, now_ns);  // a lossy uplink's figure fades while it rests
    if (!p.outstanding && now_ns >= p.next_probe_ns) {
      p.outstanding = true;
      p.sent_ns = static_cast<std::uint64_t>(now_ns);
      const std::uint64_t b = total_tx(p);
      p.busy = b != p.probe_bytes;
      p.probe_bytes = b;
      reschedule(p, now_ns);
      send(*p.session, p.sent_ns);
    }
    if (now_ns - p.last_bytes_ns >= 1'000'000'000) {
      const std::uint64_t b = total_tx(p);
      p.stats.on_bytes(b - p.last_bytes, static_cast<double>(now_ns - p.last_bytes_ns) / 1e9);
      p.last_bytes = b;
      p.last_bytes_ns = now_ns;
    }
  }
  return changed;
}

// Loss is congestion while the queue on the way out is near the largest one seen (a full
// buffer drops what comes); random loss shows at any queue below that.
bool Prober::congested(const Path& p) {
  const dp::UplinkView v = view_of(p);
  return v.out_queue_ms >= 0 ? dp::queueing(v) && v.out_queue_ms >= 0.5 * p.stats.max_out_queue_ms()
                             : dp::queueing(v);
}

bool Prober::update_lossy(Path& p, std::int64_t now_ns) {
  const double loss = p.packet_loss = p.stats.packet_loss(now_ns);
  const bool lossy = p.lossy ? loss >= kLossyExit || now_ns < p.lossy_until_ns
                             : loss >= kLossyEnter && p.loss_streak >= kLossyStreak && !congested(p);
  const bool changed = lossy != p.lossy;
  if (changed && lossy) {
    const bool again = p.lossy_left_ns >= 0 && now_ns - p.lossy_left_ns <= kLossyMemoryNs;
    p.lossy_hold_ns = again ? std::min(2 * p.lossy_hold_ns, kLossyMaxHoldNs) : kLossyHoldNs;
    p.lossy_until_ns = now_ns + p.lossy_hold_ns;
  }
  if (changed && !lossy) {
    p.lossy_left_ns = now_ns;
    p.loss_streak = 0;  // tried again: it takes a new streak of evidence
  }
  if (changed && lossy)
    spdlog::info("uplink {} (session {:08x}) loses {:.1f} % of its packets with no queue: striping leaves it "
                 "for at least {:.0f} s",
                 p.session->uplink, p.session->local_index, loss * 100, static_cast<double>(p.lossy_hold_ns) / 1e9);
  else if (changed)
    spdlog::info("uplink {} (session {:08x}): packet loss down to {:.1f} %; striping uses it again", p.session->uplink,
                 p.session->local_index, loss * 100);
  p.lossy = lossy;
  return changed;
}

bool Prober::on_pong(std::uint32_t local_index, std::uint64_t body, std::int64_t now_ns,
                     std::optional<std::uint64_t> peer_rx_bytes, std::optional<PeerPackets> peer_packets,
                     std::optional<std::int64_t> peer_answer_ns) {
  Path* found = find(local_index);
  if (found == nullptr) return false;
  Path& p = *found;
  if (!p.outstanding || body != p.sent_ns) return false;  // late answer to a probe that timed out
  const dp::HealthState before = p.health.state();
  p.outstanding = false;
  p.stats.on_rtt_sample(static_cast<double>(now_ns - static_cast<std::int64_t>(body)) / 1e6, now_ns);
  p.stats.on_probe_result(true);
  // The way out alone: the peer's clock as it answered minus ours as we sent.
  if (peer_answer_ns) p.stats.on_owd_sample(*peer_answer_ns - static_cast<std::int64_t>(body), now_ns);
  // What the path delivered to the peer since the last report: the throughput that
  // counts (what we send into a congested path is more than it carries).
  // An interval in which we sent no Data says nothing about the path: no sample, so an
  // idle uplink keeps what it was last seen to carry.
  if (peer_rx_bytes && (p.peer_rx_ns < 0 || now_ns - p.peer_rx_ns >= kMinRateSampleNs)) {
    const std::uint64_t sent = total_tx(p);
    if (p.peer_rx_ns >= 0 && *peer_rx_bytes >= p.peer_rx && sent != p.sent_at_peer_rx)
      p.stats.on_delivered(*peer_rx_bytes - p.peer_rx, static_cast<double>(now_ns - p.peer_rx_ns) / 1e9,
                           sent - p.sent_at_peer_rx);
    p.peer_rx = *peer_rx_bytes;
    p.peer_rx_ns = now_ns;
    p.sent_at_peer_rx = sent;
  }
  // The path's packet loss: only from Pongs of the current session (a late one of the
  // session a rekey replaced counts differently), and only while both counts grow.
  if (peer_packets && local_index == p.session->local_index) {
    const PeerPackets& was = p.peer_packets.value_or(PeerPackets{});
    if (congested(p)) p.congested_ns = now_ns;
    const bool calm = p.congested_ns < 0 || now_ns - p.congested_ns > kCongestedNs;
    if (p.peer_packets && peer_packets->received >= was.received && peer_packets->expected >= was.expected) {
      std::uint64_t got = peer_packets->received - was.received;
      const std::uint64_t sent = peer_packets->expected - was.expected;
      const std::uint64_t excuse = std::min(p.excused, sent - std::min(got, sent));
      got += excuse;
      p.excused -= excuse;
      if (p.stats.on_packets(got, sent, now_ns))
        p.loss_streak = p.stats.last_packet_loss() >= kLossyEnter && calm ? p.loss_streak + 1 : 0;
    }
    p.peer_packets = peer_packets;
  }
  p.health.on_success();
  p.health.on_metrics(loss_for_health(p.stats), p.stats.srtt_ms());
  note_state(p, before, now_ns);
  p.next_probe_ns = static_cast<std::int64_t>(body);
  reschedule(p, p.next_probe_ns);
  const bool lossy_changed = update_lossy(p, now_ns);
  return p.health.state() != before || lossy_changed;
}

bool Prober::on_pong(std::uint32_t local_index, std::span<const std::uint8_t> body, std::int64_t now_ns) {
  if (body.size() < 8) return false;
  return on_pong(local_index, dp::load_le64(body.data()), now_ns,
                 body.size() >= 16 ? std::optional(dp::load_le64(body.data() + 8)) : std::nullopt,
                 body.size() >= 32 ? std::optional(PeerPackets{dp::load_le64(body.data() + 16),
                                                               dp::load_le64(body.data() + 24)})
                                   : std::nullopt,
                 body.size() >= 40 ? std::optional(static_cast<std::int64_t>(dp::load_le64(body.data() + 32)))
                                   : std::nullopt);
}

bool Prober::on_link(const dp::Session* s, bool up) {
  auto it = paths_.find(s->local_index);
  if (it == paths_.end()) return false;
  const dp::HealthState before = it->second.health.state();
  if (up) it->second.health.on_link_up();
  else it->second.health.on_link_down();
  note_state(it->second, before, monotonic_ns());
  return it->second.health.state() != before;
}

void Prober::fill(UplinkStatus& out, const dp::Session& s) const {
  const dp::UplinkView v = view(&s);
  out.connected = true;
  out.state = dp::health_name(v.state);
  out.srtt_ms = v.srtt_ms;
  out.loss = v.loss;
  out.packet_loss = v.packet_loss;
  out.lossy = v.lossy;
  out.throughput_bps = v.throughput_bps;
  auto it = paths_.find(s.local_index);
  out.rttvar_ms = it == paths_.end() ? 0.0 : it->second.stats.rttvar_ms();
  out.tx_bytes = it == paths_.end() ? tx_bytes(s) : total_tx(it->second);
  const bool known = it != paths_.end();
  out.tx_packets = (known ? it->second.packets_before : 0) + tx_packets(s, false);
  out.tx_copies = (known ? it->second.copies_before : 0) + tx_packets(s, true);
  out.rx_bytes = (known ? it->second.rx_before : 0) + s.rx_bytes.load(std::memory_order_relaxed);
  out.delivered_bytes = it == paths_.end() ? 0 : it->second.delivered_before + it->second.peer_rx;
  out.peer = s.peer_copy().to_string();
}

dp::HealthState Prober::state(const dp::Session* s) const {
  auto it = paths_.find(s->local_index);
  return it == paths_.end() ? dp::HealthState::Unknown : it->second.health.state();
}

dp::UplinkView Prober::view(const dp::Session* s) const {
  auto it = paths_.find(s->local_index);
  if (it == paths_.end()) {
    dp::UplinkView v;
    v.id = s->uplink;
    return v;
  }
  return view_of(it->second);
}

dp::UplinkView Prober::view_of(const Path& p) {
  dp::UplinkView v;
  v.id = p.session->uplink;
  v.state = p.health.state();
  v.srtt_ms = p.stats.has_rtt() ? p.stats.srtt_ms() : -1;
  v.base_rtt_ms = p.stats.has_rtt() ? p.stats.base_rtt_ms() : -1;
  v.out_queue_ms = p.stats.has_out_queue() ? p.stats.out_queue_ms() : -1;
  v.loss = p.stats.loss();
  v.throughput_bps = p.stats.has_delivered() ? p.stats.delivered_bps() : p.stats.throughput_bps();
  v.recent_bps = p.stats.recent_max_bps();
  v.suspect = p.health.consecutive_failures() > 0;
  v.lossy = p.lossy;
  v.packet_loss = p.packet_loss;
  v.healthy_since_ns = p.healthy_since_ns;
  return v;
}

}  // namespace triglav::ctl
