// The health of one uplink, exactly as specified:
//   Unknown -> Healthy on success; Healthy -> Degraded after 3 consecutive failures;
//   Degraded -> Unhealthy after 3 more; Unhealthy -> Down after 4 more; any state ->
//   Healthy on success.
// On top of that, measurements set a floor: loss > 10 % or RTT > 1 s -> at least Degraded;
// loss > 30 % or RTT > 5 s -> at least Unhealthy. A link that the kernel reports down is
// Down at once (netlink event, not a probe timeout) until it is up again (Unknown).
#pragma once

#include <cstdint>

namespace triglav::dp {

enum class HealthState : std::uint8_t { Unknown, Healthy, Degraded, Unhealthy, Down };

const char* health_name(HealthState s) noexcept;

// Carries flows in normal operation: everything but Unhealthy and Down. (The scheduler
// prefers Healthy and Unknown uplinks to Degraded ones: dataplane/scheduler.h.)
constexpr bool usable(HealthState s) noexcept {
  return s == HealthState::Unknown || s == HealthState::Healthy || s == HealthState::Degraded;
}

class Health {
 public:
  static constexpr unsigned kFailuresDegraded = 3;
  static constexpr unsigned kFailuresUnhealthy = kFailuresDegraded + 3;
  static constexpr unsigned kFailuresDown = kFailuresUnhealthy + 4;

  void on_success() noexcept;
  void on_failure() noexcept;
  // Latest loss (0..1) and smoothed RTT (ms, < 0 if unknown).
  void on_metrics(double loss, double srtt_ms) noexcept;
  void on_link_down() noexcept;
  void on_link_up() noexcept;

  HealthState state() const noexcept;
  unsigned consecutive_failures() const noexcept { return failures_; }

 private:
  HealthState base_ = HealthState::Unknown;  // from successes and failures
  HealthState floor_ = HealthState::Unknown; // from measurements
  unsigned failures_ = 0;
  bool link_down_ = false;
};

}  // namespace triglav::dp
