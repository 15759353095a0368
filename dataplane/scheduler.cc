#include "dataplane/scheduler.h"

#include <algorithm>
#include <limits>

#include "dataplane/mix.h"

namespace triglav::dp {
namespace {

constexpr UplinkMask bit(std::size_t i) noexcept { return UplinkMask{1} << i; }

// RTT for comparisons: an uplink without a sample sorts after every measured one.
double rtt_key(const UplinkView& u) noexcept {
  return u.srtt_ms < 0 ? std::numeric_limits<double>::infinity() : u.srtt_ms;
}

}  // namespace

double queue_fill(const UplinkView& v) noexcept {
  const double base = v.base_rtt_ms >= 0 ? v.base_rtt_ms : 0;
  const double slack = std::max(5.0, 0.25 * base);
  if (v.out_queue_ms >= 0) return v.out_queue_ms / slack;
  if (v.base_rtt_ms < 0 || v.srtt_ms < 0) return 0;
  return std::max(0.0, v.srtt_ms - base) / slack;
}

std::optional<Strategy> parse_strategy(std::string_view n) noexcept {
  if (n == "adaptive") return Strategy::Adaptive;
  if (n == "lowest_latency") return Strategy::LowestLatency;
  if (n == "lowest_loss") return Strategy::LowestLoss;
  if (n == "weighted_round_robin") return Strategy::WeightedRoundRobin;
  if (n == "bandwidth_proportional") return Strategy::BandwidthProportional;
  if (n == "redundant") return Strategy::Redundant;
  if (n == "primary_backup") return Strategy::PrimaryBackup;
  if (n == "ecmp_aware") return Strategy::EcmpAware;
  if (n == "aggregate") return Strategy::Aggregate;
  return std::nullopt;
}

const char* strategy_name(Strategy s) noexcept {
  switch (s) {
    case Strategy::Adaptive: return "adaptive";
    case Strategy::LowestLatency: return "lowest_latency";
    case Strategy::LowestLoss: return "lowest_loss";
    case Strategy::WeightedRoundRobin: return "weighted_round_robin";
    case Strategy::BandwidthProportional: return "bandwidth_proportional";
    case Strategy::Redundant: return "redundant";
    case Strategy::PrimaryBackup: return "primary_backup";
    case Strategy::EcmpAware: return "ecmp_aware";
    case Strategy::Aggregate: return "aggregate";
  }
  return "?";
}

void Scheduler::update(std::span<const UplinkView> uplinks, std::int64_t now_ns) noexcept {
  n_ = std::min<std::size_t>(uplinks.size(), kMaxUplinks);
  usable_ = 0;
  double max_rtt = 0, max_loss = 0, max_bw = 0;
  for (std::size_t i = 0; i < n_; ++i) up_[i] = uplinks[i];
  // Tiers: Healthy and Unknown uplinks; Degraded ones only when no such uplink is left
  // (except for redundant, where a copy on a lossy uplink still helps, and
  // primary_backup, which keeps its primary until it is Unhealthy), so that flows leave
  // an uplink after its third failed probe rather than its sixth. Last resort:
  // when every uplink is Unhealthy or Down, the Unhealthy ones still carry some traffic
  // (often they are only slow or lossy); dropping everything would not.
  const auto tier = [&](auto in_tier) {
    for (std::size_t i = 0; i < n_; ++i)
      if (in_tier(up_[i].state)) usable_ |= bit(i);
  };
  tier([](HealthState s) { return s == HealthState::Healthy || s == HealthState::Unknown; });
  if (usable_ == 0 || !cfg_.prefer_healthy || cfg_.strategy == Strategy::Redundant ||
      cfg_.strategy == Strategy::PrimaryBackup)
    tier([](HealthState s) { return s == HealthState::Degraded; });
  if (usable_ == 0) tier([](HealthState s) { return s == HealthState::Unhealthy; });
  for (std::size_t i = 0; i < n_; ++i) {
    if (!(usable_ & bit(i))) continue;
    max_rtt = std::max(max_rtt, up_[i].srtt_ms);
    max_loss = std::max(max_loss, up_[i].loss);
    max_bw = std::max(max_bw, up_[i].throughput_bps);
  }
  // Adaptive score: each term is value / largest value among the usable uplinks (a term
  // equal everywhere still counts; a term that is 0 everywhere contributes nothing). An
  // uplink without an RTT sample yet counts as the slowest.
  const AdaptiveWeights& w = cfg_.weights;
  const double total = w.rtt + w.loss + w.bandwidth + w.nat;
  for (std::size_t i = 0; i < n_; ++i) {
    const UplinkView& u = up_[i];
    const double rtt = max_rtt > 0 ? (u.srtt_ms < 0 ? 1.0 : u.srtt_ms / max_rtt) : 0.0;
    const double loss = max_loss > 0 ? u.loss / max_loss : 0.0;
    const double bw = max_bw > 0 ? 1.0 - u.throughput_bps / max_bw : 0.0;
    const double nat = u.behind_nat ? 1.0 : 0.0;
    score_[i] = total > 0 ? (w.rtt * rtt + w.loss * loss + w.bandwidth * bw + w.nat * nat) / total : 0.0;
    if (!(usable_ & bit(i))) {
      share_[i] = 0;
    } else if (cfg_.strategy == Strategy::BandwidthProportional) {
      share_[i] = max_bw > 0 ? u.throughput_bps / max_bw : 1.0;
    } else if (cfg_.strategy == Strategy::WeightedRoundRobin) {
      share_[i] = std::max(0.0, u.weight);
    } else {
      share_[i] = 1.0 - score_[i] + 0.05;  // the worst still gets a little
    }
  }
  // primary_backup: leave the primary as soon as it is unusable; return only after it
  // has been Healthy for the hysteresis time without interruption.
  // The time it became Healthy comes from the prober when known (updates may be rare while
  // no packets flow); otherwise from the first update that saw it Healthy.
  const std::size_t p = cfg_.primary;
  const HealthState ps = p < n_ ? up_[p].state : HealthState::Down;
  std::int64_t since = -1;
  if (ps == HealthState::Healthy) {
    if (primary_healthy_since_ < 0) primary_healthy_since_ = now_ns;
    since = up_[p].healthy_since_ns >= 0 ? up_[p].healthy_since_ns : primary_healthy_since_;
  } else {
    primary_healthy_since_ = -1;
  }
  if (p >= n_ || !(usable_ & bit(p))) {  // Down, or a lower tier than some backup
    on_primary_ = false;
  } else if (!on_primary_ && since >= 0 && now_ns - since >= cfg_.hysteresis_ns) {
    on_primary_ = true;
  }
}

template <typename Better>
UplinkMask Scheduler::best_by(Better better, int skip) const noexcept {
  int best = -1;
  for (std::size_t i = 0; i < n_; ++i) {
    if (!(usable_ & bit(i)) || static_cast<int>(i) == skip) continue;
    if (best < 0 || better(i, static_cast<std::size_t>(best))) best = static_cast<int>(i);
  }
  return best < 0 ? 0 : bit(static_cast<std::size_t>(best));
}

UplinkMask Scheduler::pick_weighted_hash(std::uint64_t h) const noexcept {
  double total = 0;
  for (std::size_t i = 0; i < n_; ++i) total += share_[i];
  if (total <= 0) return 0;
  const double x = static_cast<double>(mix64(h) >> 11) * 0x1.0p-53 * total;
  double acc = 0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < n_; ++i) {
    if (share_[i] <= 0) continue;
    acc += share_[i];
    last = i;
    if (x < acc) return bit(i);
  }
  return bit(last);
}

// Smooth weighted round robin: each pick adds every weight to its counter, takes the
// largest counter and subtracts the total from it; picks interleave in proportion.
UplinkMask Scheduler::pick_smooth_wrr() noexcept {
  double total = 0;
  int best = -1;
  for (std::size_t i = 0; i < n_; ++i) {
    if (share_[i] <= 0) continue;
    current_[i] += share_[i];
    total += share_[i];
    if (best < 0 || current_[i] > current_[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
  }
  if (best < 0) return 0;
  current_[static_cast<std::size_t>(best)] -= total;
  return bit(static_cast<std::size_t>(best));
}

UplinkMask Scheduler::pick(std::uint64_t h) noexcept {
  if (usable_ == 0) return 0;
  const auto by_score = [this](std::size_t a, std::size_t b) { return score_[a] < score_[b]; };
  switch (cfg_.strategy) {
    case Strategy::Adaptive:
    case Strategy::Aggregate:  // a flow that is not striped (the peer cannot reorder)
      return pick_weighted_hash(h);
    case Strategy::LowestLatency:
      return best_by([this](std::size_t a, std::size_t b) { return rtt_key(up_[a]) < rtt_key(up_[b]); });
    case Strategy::LowestLoss:
      return best_by([this](std::size_t a, std::size_t b) {
        return up_[a].loss < up_[b].loss || (up_[a].loss == up_[b].loss && rtt_key(up_[a]) < rtt_key(up_[b]));
      });
    case Strategy::WeightedRoundRobin:
    case Strategy::BandwidthProportional:
      return pick_smooth_wrr();
    case Strategy::Redundant:
      return usable_;
    case Strategy::PrimaryBackup: {
      const std::size_t p = cfg_.primary;
      const bool primary_usable = p < n_ && (usable_ & bit(p));
      if (on_primary_ && primary_usable) return bit(p);
      const UplinkMask backup = best_by(by_score, static_cast<int>(p));
      return backup != 0 ? backup : (primary_usable ? bit(p) : 0);
    }
    case Strategy::EcmpAware: {
      // Rendezvous (highest random weight) hashing over the usable uplinks' ids.
      const auto weight = [&](std::size_t i) { return mix64(h ^ mix64(0x9e3779b97f4a7c15ull * (up_[i].id + 1u))); };
      return best_by([&](std::size_t a, std::size_t b) { return weight(a) > weight(b); });
    }
  }
  return 0;
}

}  // namespace triglav::dp
