#include "dataplane/stripe.h"

#include <algorithm>
#include <limits>

namespace triglav::dp {

void Striper::update(std::span<const UplinkView> views) noexcept {
  double known_owd = 0;
  suspect_ = lossy_ = 0;
  for (std::size_t i = 0; i < views.size() && i < kMaxUplinks; ++i) {
    if (views[i].suspect) suspect_ |= UplinkMask{1} << i;
    if (views[i].lossy) lossy_ |= UplinkMask{1} << i;
  }
  for (const UplinkView& v : views)
    if (v.srtt_ms >= 0) known_owd = std::max(known_owd, v.srtt_ms * 1e6 / 2);
  for (std::size_t i = 0; i < views.size() && i < kMaxUplinks; ++i) {
    const UplinkView& v = views[i];
    Lane& l = lanes_[i];
    // No RTT sample yet: as slow as the slowest known one, so it is not flooded first.
    // With the peer's clock, half the base RTT plus the queue on the way out (the queue
    // on the way back, e.g. behind the other direction's bulk, is not this one's).
    l.owd_ns = v.srtt_ms < 0 ? known_owd
               : v.out_queue_ms >= 0 && v.base_rtt_ms >= 0 ? (v.base_rtt_ms / 2 + v.out_queue_ms) * 1e6
                                                           : v.srtt_ms * 1e6 / 2;
    const bool queueing = dp::queueing(v);
    const double gain = queueing ? 1.0 : kProbeGain;
    const double measured = std::max(v.throughput_bps, v.recent_bps);
    // What an uplink delivered is what it was given: a light load (the ACKs of a flow
    // going the other way) says nothing of its capacity. Without a queue, it is credited
    // at least kDefaultRateBps, so a trickle stays on the uplink of the shortest delay.
    const double floor = queueing ? kMinRateBps : kDefaultRateBps;
    const double bps = measured > 0 ? std::max(measured * gain, floor) : kDefaultRateBps;
    l.bytes_per_ns = bps / 8e9;
    l.budget = l.bytes_per_ns * (2 * l.owd_ns + static_cast<double>(kBudgetMarginNs));
  }
}

void Striper::drain(Lane& l, std::int64_t now_ns) noexcept {
  if (now_ns > l.at_ns) {
    l.queued = std::max(0.0, l.queued - static_cast<double>(now_ns - l.at_ns) * l.bytes_per_ns);
    l.at_ns = now_ns;
  }
}

double Striper::arrival_ns(unsigned u, std::size_t bytes, std::int64_t now_ns) noexcept {
  Lane& l = lanes_[u];
  drain(l, now_ns);
  return l.owd_ns + (l.queued + static_cast<double>(bytes)) / l.bytes_per_ns;
}

int Striper::pick(UplinkMask allowed, std::size_t bytes, std::int64_t now_ns) noexcept {
  allowed = prefer_without(prefer_without(allowed, suspect_), lossy_);
  int best = -1;
  bool best_within = false;
  double best_t = std::numeric_limits<double>::infinity();
  for (unsigned u = 0; u < kMaxUplinks; ++u) {
    if (!(allowed >> u & 1)) continue;
    const double t = arrival_ns(u, bytes, now_ns);
    const bool within = lanes_[u].queued <= lanes_[u].budget;
    if (best < 0 || (within && !best_within) || (within == best_within && t < best_t)) {
      best = static_cast<int>(u);
      best_within = within;
      best_t = t;
    }
  }
  if (best >= 0) lanes_[static_cast<unsigned>(best)].queued += static_cast<double>(bytes);
  return best;
}

}  // namespace triglav::dp
