#include "dataplane/health.h"

#include <algorithm>

namespace triglav::dp {

const char* health_name(HealthState s) noexcept {
  switch (s) {
    case HealthState::Unknown: return "unknown";
    case HealthState::Healthy: return "healthy";
    case HealthState::Degraded: return "degraded";
    case HealthState::Unhealthy: return "unhealthy";
    case HealthState::Down: return "down";
  }
  return "?";
}

void Health::on_success() noexcept {
  failures_ = 0;
  base_ = HealthState::Healthy;
}

void Health::on_failure() noexcept {
  ++failures_;
  if (failures_ >= kFailuresDown) base_ = HealthState::Down;
  else if (failures_ >= kFailuresUnhealthy) base_ = HealthState::Unhealthy;
  else if (failures_ >= kFailuresDegraded) base_ = HealthState::Degraded;
}

void Health::on_metrics(double loss, double srtt_ms) noexcept {
  floor_ = HealthState::Unknown;
  if (loss > 0.10 || srtt_ms > 1000) floor_ = HealthState::Degraded;
  if (loss > 0.30 || srtt_ms > 5000) floor_ = HealthState::Unhealthy;
}

void Health::on_link_down() noexcept { link_down_ = true; }

void Health::on_link_up() noexcept {
  if (!link_down_) return;  // the kernel repeats link messages; only a real return resets
  link_down_ = false;
  base_ = HealthState::Unknown;
  floor_ = HealthState::Unknown;
  failures_ = 0;
}

HealthState Health::state() const noexcept {
  if (link_down_) return HealthState::Down;
  // Unknown sorts lowest, so a floor only ever makes a known state worse.
  if (base_ == HealthState::Unknown) return floor_ == HealthState::Unknown ? base_ : floor_;
  return std::max(base_, floor_);
}

}  // namespace triglav::dp
