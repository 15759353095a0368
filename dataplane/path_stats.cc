#include "dataplane/path_stats.h"

#include <algorithm>
#include <cmath>

namespace triglav::dp {

void PathStats::on_rtt_sample(double r, std::int64_t now_ns) noexcept {
  if (!(r >= 0)) return;
  // The base RTT: the least of this window and the last one.
  if (base_n_ == 0) base_start_ns_ = now_ns;
  if (base_n_ == 0 || r < base_cur_) base_cur_ = r;
  if (++base_n_ >= kBaseWindow && now_ns - base_start_ns_ >= kBaseWindowNs) {
    base_prev_ = base_cur_;
    base_n_ = 0;
  }
  if (!has_rtt_) {
    srtt_ = r;
    rttvar_ = r / 2;
    has_rtt_ = true;
    return;
  }
  rttvar_ = 0.75 * rttvar_ + 0.25 * std::fabs(srtt_ - r);
  srtt_ = 0.875 * srtt_ + 0.125 * r;
}

double PathStats::rto_ms(double min_ms, double max_ms, double g) const noexcept {
  if (!has_rtt_) return std::max(min_ms, 1000.0);  // RFC 6298 (2.1): 1 s before any sample
  return std::clamp(srtt_ + std::max(g, 4 * rttvar_), min_ms, max_ms);
}

void PathStats::on_probe_result(bool answered) noexcept {
  lost_[next_] = !answered;
  next_ = (next_ + 1) % kLossWindow;
  count_ = std::min(count_ + 1, kLossWindow);
}

double PathStats::loss() const noexcept {
  if (count_ == 0) return 0;
  return static_cast<double>(lost_.count()) / count_;
}

namespace {
// One rate sample (bytes over dt_s) into an EMA with alpha = kThroughputAlpha.
void ema_rate(double& bps, bool& has, std::uint64_t bytes, double dt_s) noexcept {
  if (dt_s <= 0) return;
  const double sample = static_cast<double>(bytes) * 8 / dt_s;
  bps = has ? PathStats::kThroughputAlpha * sample + (1 - PathStats::kThroughputAlpha) * bps : sample;
  has = true;
}
}  // namespace

void PathStats::on_bytes(std::uint64_t bytes, double dt_s) noexcept { ema_rate(throughput_bps_, has_tp_, bytes, dt_s); }

void PathStats::on_delivered(std::uint64_t bytes, double dt_s, std::uint64_t sent_bytes) noexcept {
  if (dt_s <= 0) return;
  recent_[recent_next_] = static_cast<double>(bytes) * 8 / dt_s;
  recent_next_ = (recent_next_ + 1) % kRecentSamples;
  if (has_delivered_) {
    const double rate = static_cast<double>(bytes) * 8 / dt_s;
    const double sent_rate = static_cast<double>(sent_bytes) * 8 / dt_s;
    if (rate < delivered_bps_ && sent_rate < 0.5 * delivered_bps_) {
      app_limited_s_ += dt_s;
      if (app_limited_s_ < kAppLimitedHoldS) return;
    } else {
      app_limited_s_ = 0;
    }
  }
  ema_rate(delivered_bps_, has_delivered_, bytes, dt_s);
}

bool PathStats::on_packets(std::uint64_t received, std::uint64_t expected, std::int64_t now_ns) noexcept {
  loss_received_ += received;
  loss_expected_ += expected;
  if (loss_expected_ < kMinLossPackets) return false;
  // A reordered packet may arrive after an interval that counted a later one: the next
  // sample has one more received than sent. Never below 0.
  const double sample =
      std::max(0.0, 1.0 - static_cast<double>(loss_received_) / static_cast<double>(loss_expected_));
  packet_loss_ = kPacketLossAlpha * sample + (1 - kPacketLossAlpha) * packet_loss(now_ns);
  packet_loss_ns_ = now_ns;
  last_packet_loss_ = sample;
  loss_received_ = loss_expected_ = 0;
  return true;
}

double PathStats::packet_loss(std::int64_t now_ns) const noexcept {
  if (packet_loss_ == 0 || now_ns <= packet_loss_ns_) return packet_loss_;
  return packet_loss_ * std::exp2(-static_cast<double>(now_ns - packet_loss_ns_) / kPacketLossHalfLifeNs);
}

void PathStats::on_owd_sample(std::int64_t d, std::int64_t now_ns) noexcept {
  if (owd_n_ == 0) owd_start_ns_ = now_ns;
  if (owd_n_ == 0 || d < owd_cur_) owd_cur_ = d;
  const std::int64_t base = std::min(owd_prev_, owd_cur_);
  const double q = static_cast<double>(d - base) / 1e6;
  qmax_cur_ = owd_n_ == 0 ? q : std::max(qmax_cur_, q);
  if (++owd_n_ >= kBaseWindow && now_ns - owd_start_ns_ >= kBaseWindowNs) {
    owd_prev_ = owd_cur_;
    qmax_prev_ = qmax_cur_;
    owd_n_ = 0;
  }
  out_queue_ms_ = has_owd_ ? 0.75 * out_queue_ms_ + 0.25 * q : q;
  has_owd_ = true;
}

}  // namespace triglav::dp
