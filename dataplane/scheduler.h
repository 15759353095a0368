// Uplink scheduling: which uplink(s) a new flow (or a packet outside any flow) uses,
// given the uplinks' latest measurements. Eight strategies:
//
//   adaptive                score = 35 % RTT + 35 % loss + 20 % bandwidth + 10 % NAT
//                           (weights configurable, each term normalised across the usable
//                           uplinks); flows spread in proportion to (1 - score)
//   lowest_latency          the usable uplink with the lowest smoothed RTT
//   lowest_loss             the lowest loss, then the lowest RTT
//   weighted_round_robin    smooth weighted round robin over configured weights
//   bandwidth_proportional  smooth weighted round robin over measured throughput
//   redundant               every usable uplink
//   primary_backup          the primary while usable; else the best backup; back to the
//                           primary once it has been Healthy for the hysteresis time
//   ecmp_aware              rendezvous hash of the flow: stable like an ECMP router, and
//                           only the flows of an uplink that goes away move
//   aggregate               every packet of a flow to the uplink where it is predicted
//                           to arrive first (dataplane/stripe.h), the receiver putting the
//                           flow back in order (dataplane/reorder.h); with a peer that
//                           cannot reorder, flows are placed as by adaptive
//
// Flows use Healthy and Unknown uplinks; Degraded ones only when none of those is left
// (prefer_healthy, the default; redundant sends copies on Degraded ones too, and
// primary_backup keeps a Degraded primary); Unhealthy ones only when nothing else is
// left; Down ones never. A flow leaves its uplink when it drops out of the usable tier.
//
// One Scheduler per worker; update() with each new uplink snapshot, pick() per new flow.
// Pure and single-threaded; no allocation in pick().
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "dataplane/health.h"

namespace triglav::dp {

inline constexpr unsigned kMaxUplinks = 16;  // uplinks per client (uplink ids 0-15)
using UplinkMask = std::uint64_t;  // bit i = uplink i

// m without the uplinks of `avoid`, unless that leaves none (then m): how striping
// leaves suspect, then lossy uplinks while another remains (Striper::pick,
// striped_uplinks).
constexpr UplinkMask prefer_without(UplinkMask m, UplinkMask avoid) noexcept {
  return (m & ~avoid) != 0 ? m & ~avoid : m;
}

enum class Strategy : std::uint8_t {
  Adaptive,
  LowestLatency,
  LowestLoss,
  WeightedRoundRobin,
  BandwidthProportional,
  Redundant,
  PrimaryBackup,
  EcmpAware,
  Aggregate,
};

std::optional<Strategy> parse_strategy(std::string_view name) noexcept;
const char* strategy_name(Strategy s) noexcept;

struct UplinkView {
  std::uint8_t id = 0;
  HealthState state = HealthState::Unknown;
  double srtt_ms = -1;  // < 0: no sample yet
  double base_rtt_ms = -1;  // the least recent RTT (the path without queueing); < 0: unknown
  double out_queue_ms = -1;  // the queue on the way out alone (PathStats::out_queue_ms); < 0: unknown
  double loss = 0;      // 0..1
  double throughput_bps = 0;
  double recent_bps = 0;  // the highest delivered rate of the last few reports (striping)
  bool suspect = false;   // its latest probe went unanswered (striping avoids it at once)
  bool lossy = false;     // it loses packets while holding no queue (striping avoids it)
  double packet_loss = 0;  // 0..1, from the peer's packet counts (PathStats::packet_loss)
  bool behind_nat = false;
  double weight = 1;    // weighted_round_robin
  std::int64_t healthy_since_ns = -1;  // when it last became Healthy (-1: not Healthy, or not known)
};

// The uplink's queue on the way out (or, when the peer does not report its clock, its
// RTT above the base RTT) as a fraction of the larger of 5 ms and a quarter of the base
// RTT; 0 while nothing is measured.
double queue_fill(const UplinkView& v) noexcept;
// Whether the uplink holds a queue on the way out: queue_fill above 1.
inline bool queueing(const UplinkView& v) noexcept { return queue_fill(v) > 1; }

struct AdaptiveWeights {
  double rtt = 0.35, loss = 0.35, bandwidth = 0.20, nat = 0.10;
};

struct SchedulerConfig {
  Strategy strategy = Strategy::Adaptive;
  AdaptiveWeights weights;
  std::uint8_t primary = 0;                  // primary_backup
  std::int64_t hysteresis_ns = 3'000'000'000;  // primary Healthy this long before we return
  // Degraded uplinks only when no Healthy or Unknown one is left (all strategies but
  // redundant and primary_backup). Off: Degraded counts as fully usable.
  bool prefer_healthy = true;
};

class Scheduler {
 public:
  Scheduler() = default;
  explicit Scheduler(const SchedulerConfig& cfg) : cfg_(cfg) {}

  void set_config(const SchedulerConfig& cfg) noexcept { cfg_ = cfg; }
  const SchedulerConfig& config() const noexcept { return cfg_; }

  // New measurements (at most kMaxUplinks entries). now_ns drives primary_backup.
  void update(std::span<const UplinkView> uplinks, std::int64_t now_ns) noexcept;

  // The uplink(s) for a flow with this hash: one bit, every usable bit for redundant,
  // 0 when no uplink is usable.
  [[nodiscard]] UplinkMask pick(std::uint64_t flow_hash) noexcept;

  // Adaptive score of uplink slot i (0 best .. 1 worst), for tests and status.
  double score(std::size_t i) const noexcept { return score_[i]; }
  UplinkMask usable_mask() const noexcept { return usable_; }

 private:
  // The usable uplink (other than `skip`) that beats every other by better(i, j).
  template <typename Better>
  UplinkMask best_by(Better better, int skip = -1) const noexcept;
  UplinkMask pick_weighted_hash(std::uint64_t h) const noexcept;
  UplinkMask pick_smooth_wrr() noexcept;

  SchedulerConfig cfg_;
  std::array<UplinkView, kMaxUplinks> up_{};
  std::size_t n_ = 0;
  UplinkMask usable_ = 0;
  std::array<double, kMaxUplinks> score_{};
  std::array<double, kMaxUplinks> share_{};    // adaptive / proportional weights
  std::array<double, kMaxUplinks> current_{};  // smooth WRR state
  bool on_primary_ = true;
  std::int64_t primary_healthy_since_ = -1;
};

}  // namespace triglav::dp
