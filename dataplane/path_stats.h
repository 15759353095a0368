// Measurements of one uplink (control thread): RTT smoothed with Jacobson/Karels
// (RFC 6298), loss over a sliding window of the last N probe outcomes, and throughput as
// an exponential moving average (alpha = 0.2) of observed bytes. Pure: times are passed in.
#pragma once

#include <algorithm>
#include <bitset>
#include <climits>
#include <cstdint>

namespace triglav::dp {

class PathStats {
 public:
  static constexpr unsigned kLossWindow = 32;  // probes/acks the loss rate covers
  static constexpr double kThroughputAlpha = 0.2;

  // RFC 6298 section 2: the first sample sets SRTT = R, RTTVAR = R/2; later ones
  // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R. now_ns: when the
  // sample was taken (for the base RTT's window).
  void on_rtt_sample(double rtt_ms, std::int64_t now_ns) noexcept;
  // One probe outcome into the loss window.
  void on_probe_result(bool answered) noexcept;
  // Bytes observed over an interval of dt_s seconds.
  void on_bytes(std::uint64_t bytes, double dt_s) noexcept;
  // Bytes the peer reports having received over an interval of dt_s seconds, in which
  // we sent sent_bytes (same EMA). An interval in which we sent less than half of the
  // current estimate was limited by the traffic, not by the path: a lower sample from it
  // says nothing about what the path can carry (the tail of a transfer, a few new flows)
  // and is left out, unless such samples go on for kAppLimitedHoldS, after which the
  // estimate follows them (the path, or what it is offered, really is smaller now).
  void on_delivered(std::uint64_t bytes, double dt_s, std::uint64_t sent_bytes) noexcept;
  static constexpr double kAppLimitedHoldS = 3.0;

  // Of the packets sent on the path up to the last one the peer received, how many it
  // received (the counts of its Pongs, over an interval): a sample of the path's packet
  // loss once kMinLossPackets were sent (smaller intervals add up first), into an EMA
  // with alpha kPacketLossAlpha. Unlike loss(), which counts unanswered probes, this
  // sees every packet, so a path that drops 2 % shows it within one busy probe interval.
  // True when this made a sample (last_packet_loss()).
  bool on_packets(std::uint64_t received, std::uint64_t expected, std::int64_t now_ns) noexcept;
  double last_packet_loss() const noexcept { return last_packet_loss_; }
  static constexpr std::uint64_t kMinLossPackets = 256;  // one loss in a sample: 0.4 %
  static constexpr double kPacketLossAlpha = 0.5;
  // That EMA, halved for every kPacketLossHalfLifeNs since its last sample: a path
  // left alone for its loss carries no packets to measure, so its figure fades and the
  // path is tried again (0 before any sample).
  double packet_loss(std::int64_t now_ns) const noexcept;
  static constexpr std::int64_t kPacketLossHalfLifeNs = 2'000'000'000;

  // The peer's clock when it answered a probe minus ours when we sent it: the one-way
  // delay plus an unknown, constant clock offset. Its least value over the last one to
  // two windows (a window: at least kBaseWindow samples and kBaseWindowNs) is the empty
  // path; what a sample exceeds it by is the queue on the way out alone (smoothed, alpha
  // 1/4), which the round trip mixes up with the queue on the way back. now_ns: when
  // the sample was taken.
  void on_owd_sample(std::int64_t offset_owd_ns, std::int64_t now_ns) noexcept;
  bool has_out_queue() const noexcept { return has_owd_; }
  double out_queue_ms() const noexcept { return out_queue_ms_; }
  // The largest queue a sample showed over the same windows: about the path's buffer
  // once it has been full (a queue near it drops what comes; one well below it does not).
  double max_out_queue_ms() const noexcept { return std::max(qmax_prev_, qmax_cur_); }

  bool has_rtt() const noexcept { return has_rtt_; }
  // The least RTT of the last one to two windows: the path without queueing (what srtt
  // exceeds it by is the queue the path holds now). A window is at least kBaseWindow
  // samples and at least kBaseWindowNs, so a standing queue of a long transfer (busy
  // uplinks are probed every 100-250 ms) is not taken for the empty path after a few
  // seconds.
  static constexpr unsigned kBaseWindow = 32;
  static constexpr std::int64_t kBaseWindowNs = 10'000'000'000;
  double base_rtt_ms() const noexcept { return base_n_ == 0 || base_prev_ < base_cur_ ? base_prev_ : base_cur_; }
  double srtt_ms() const noexcept { return srtt_; }
  double rttvar_ms() const noexcept { return rttvar_; }
  // RTO = SRTT + max(G, 4 RTTVAR), clamped to [min_ms, max_ms] (RFC 6298 (2.4), with a
  // lower floor than its 1 s because probes, not TCP, depend on it).
  double rto_ms(double min_ms = 200, double max_ms = 60'000, double granularity_ms = 1) const noexcept;
  double loss() const noexcept;  // 0..1 over the window (0 with no samples)
  unsigned samples() const noexcept { return count_; }
  double throughput_bps() const noexcept { return throughput_bps_; }  // sent
  bool has_delivered() const noexcept { return has_delivered_; }
  // The highest delivered rate of the last kRecentSamples reports: follows an increase
  // at once (the EMA takes seconds), for striping (dataplane/stripe.h).
  static constexpr unsigned kRecentSamples = 8;
  double recent_max_bps() const noexcept {
    double m = 0;
    for (double v : recent_) m = v > m ? v : m;
    return m;
  }
  double delivered_bps() const noexcept { return delivered_bps_; }

 private:
  bool has_rtt_ = false;
  double srtt_ = 0, rttvar_ = 0;
  double base_cur_ = 0, base_prev_ = 1e300;
  unsigned base_n_ = 0;
  std::bitset<kLossWindow> lost_;
  unsigned next_ = 0, count_ = 0;
  bool has_tp_ = false;
  double throughput_bps_ = 0;
  bool has_delivered_ = false;
  double delivered_bps_ = 0;
  double app_limited_s_ = 0;  // how long lower app-limited samples have been left out
  double recent_[kRecentSamples] = {};
  std::uint64_t loss_received_ = 0, loss_expected_ = 0;  // counts not yet sampled
  double packet_loss_ = 0, last_packet_loss_ = 0;
  std::int64_t packet_loss_ns_ = 0;  // when packet_loss_ was last sampled
  bool has_owd_ = false;
  std::int64_t owd_cur_ = 0, owd_prev_ = INT64_MAX;
  unsigned owd_n_ = 0;
  std::int64_t owd_start_ns_ = 0;   // when the current window began
  std::int64_t base_start_ns_ = 0;
  double out_queue_ms_ = 0;
  double qmax_cur_ = 0, qmax_prev_ = 0;
  unsigned recent_next_ = 0;
};

}  // namespace triglav::dp
