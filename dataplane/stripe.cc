#include "dataplane/stripe.h"

#include <algorithm>
#include <limits>

namespace triglav::dp {

void Striper::update(std::span<const UplinkView> views, std::int64_t repair_ns) noexcept {
  double known_owd = 0;
  suspect_ = lossy_ = 0;
  clear_ = ~UplinkMask{0};
  const bool repair = repair_ns > 0;
  const double loss_cost = repair ? static_cast<double>(repair_ns) : kLossPenaltyNs;
  for (std::size_t i = 0; i < views.size() && i < kMaxUplinks; ++i) {
    if (views[i].suspect) suspect_ |= UplinkMask{1} << i;
    if (avoid_lossy(views[i], repair)) lossy_ |= UplinkMask{1} << i;
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
    l.loss_ns = (v.packet_loss > 0 ? std::min(v.packet_loss, 1.0) : 0.0) * loss_cost;  // NaN: none
    const double fill = queue_fill(v);
    const bool queueing = fill > 1;
    // The less queue it shows, the more it may carry beyond what it delivered: the gain
    // falls from kProbeGain at an empty queue to none where the queue counts. (A step
    // at that point made two saturated uplinks take turns: each was fed a quarter more
    // than it carried until its lagging measurement crossed the step, then the other.)
    const double gain = 1 + (kProbeGain - 1) * std::max(0.0, 1 - fill);
    const double measured = std::max(v.throughput_bps, v.recent_bps);
    // What an uplink delivered is what it was given: a light load (the ACKs of a flow
    // going the other way) says nothing of its capacity. Without a queue, it is credited
    // at least kDefaultRateBps, so a trickle stays on the uplink of the shortest delay.
    // (The floor and the remembered capacity below still switch where the queue counts:
    // both only matter to an uplink that carries little, where the probing credit is
    // what moves its share.)
    const double floor = queueing ? kMinRateBps : kDefaultRateBps;
    double bps = measured > 0 ? std::max(measured * gain, floor) : kDefaultRateBps;
    // What it delivered while holding a queue is what it carries: remembered, it is the
    // credit of the uplink when it shows no queue (a new flow's first packets are not
    // spilled onto slower uplinks because the idle uplink's measured rate is low). A
    // lossy or silent uplink forgets it: readmitted, it starts again from what it
    // delivers, not at its old share.
    if (avoid_lossy(v, repair) || v.suspect) {
      l.capacity_bps = 0;
      l.loaded_reports = 0;
    }
    if (queueing && measured > 0) l.capacity_bps = measured;
    // Loaded and still no queue after a few reports (a sender that paces at the rate it
    // measured keeps the queue short): what it delivers counts as its capacity too.
    if (!queueing && measured > kDefaultRateBps && l.capacity_bps == 0 && ++l.loaded_reports >= kClearReports)
      l.capacity_bps = measured;
    if (queueing) clear_ &= ~(UplinkMask{1} << i);
    else bps = std::max(bps, l.capacity_bps);
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
  return l.owd_ns + l.loss_ns + (l.queued + static_cast<double>(bytes)) / l.bytes_per_ns;
}

// No allowed uplink shows a queue, and the one of the shortest one-way delay has never
// shown one: what it carries is not known (its rate was measured under a light load),
// and a flow starting now (a slow start outruns the delivery reports) would be spilled
// onto slower uplinks by an underestimated rate. The packet takes that uplink, as a flow
// over it alone would, until a report shows a queue there. Its modelled queue is kept
// within the budget meanwhile, so no backlog invented from the underestimate outlasts
// this. -1 when the uplink's capacity is known: the model decides.
int Striper::pick_clear(UplinkMask allowed, std::size_t bytes, std::int64_t now_ns) noexcept {
  int best = -1;
  double best_owd = 0;
  double second_owd = std::numeric_limits<double>::infinity();
  for (unsigned u = 0; u < kMaxUplinks; ++u) {
    if (!(allowed >> u & 1)) continue;
    const double owd = lanes_[u].owd_ns + lanes_[u].loss_ns;  // a lossy one is as far as its losses cost
    if (best < 0 || owd < best_owd) {
      second_owd = best < 0 ? second_owd : best_owd;
      best = static_cast<int>(u);
      best_owd = owd;
    } else {
      second_owd = std::min(second_owd, owd);
    }
  }
  Lane& l = lanes_[static_cast<unsigned>(best)];
  // Spilling costs little where the delays are alike (the spilt packets arrive as soon).
  if (l.capacity_bps > 0 || second_owd - best_owd < kClearGapNs) return -1;
  drain(l, now_ns);
  l.queued = std::min(l.queued + static_cast<double>(bytes), std::max(l.budget, static_cast<double>(bytes)));
  return best;
}

int Striper::pick(UplinkMask allowed, std::size_t bytes, std::int64_t now_ns) noexcept {
  allowed = prefer_without(prefer_without(allowed, suspect_), lossy_);
  if (allowed != 0 && (allowed & ~clear_) == 0) {
    const int u = pick_clear(allowed, bytes, now_ns);
    if (u >= 0) return u;
  }
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
