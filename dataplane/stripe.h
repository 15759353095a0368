// Which uplink each packet of a striped flow takes (strategy aggregate): the one where
// it is predicted to ARRIVE first. Per uplink, a model of its queue: the bytes sent on
// it drain at its delivery rate, so a packet sent now arrives after the one-way delay
// plus the time the queue ahead of it needs:
//
//   arrival(u) = owd(u) + loss(u) x kLossPenaltyNs + (queued(u) + bytes) / rate(u)
//
// owd is half the base RTT plus the queue on the way out that the peer's clock shows
// (UplinkView::out_queue_ms; without it, half the smoothed RTT), rate what the
// peer reported as delivered on that uplink (Pong byte counts: the larger of their
// average and the highest of the last few reports, so an increase counts at once). An
// uplink without an outbound queue (dp::queueing) may carry more than it was given so
// far, so its rate counts up to kProbeGain times (the full gain at an empty queue, less
// as its queue grows: dp::queue_fill) and at least kDefaultRateBps, and as it is given
// more its measured rate grows; once a queue builds, its rate counts as measured.
// A packet lost costs the flow about an RTT and a retransmission (a CUBIC flow halves
// too), so an uplink's packet loss (UplinkView::packet_loss, from the Pong counts) adds
// its expected cost, loss x kLossPenaltyNs: between two idle uplinks of one delay the
// lossless one takes every packet, and one losing 2 % takes a packet only once the other
// holds 4 ms more queue. This acts from the first loss sample, long before the loss
// counts as lossy (below).
// What an uplink delivered while it held a queue is remembered as its capacity, and it
// is credited at least that while it shows none. While no allowed uplink shows a queue
// and the one of the shortest delay, its loss cost included (by kClearGapNs or more),
// never has (its capacity
// unknown: a flow's slow start outruns the reports), each packet takes that one, as it
// would alone, until a report shows a queue there.
//
// An uplink whose modelled queue exceeds its budget, about one bandwidth-delay product
// plus kBudgetMarginNs of its rate, takes nothing while another is within its own.
//
// An uplink whose latest probe went unanswered (UplinkView::suspect) takes nothing while
// another allowed one answers: a path that went silent stops receiving new packets as
// soon as the control thread publishes the timeout, not after the three failures that
// make it Degraded. Likewise an uplink that keeps losing packets while its outbound queue
// is not near full (UplinkView::lossy, decided by the Prober: the path's own loss, which
// a TCP flow striped over it would take for congestion), while another allowed one does
// not; with loss repair, only while it loses kRepairLossLimit or more (the repair hides
// the rest from the flow), and a loss then costs the repair's wait, not kLossPenaltyNs.
//
// One Striper per (client, worker), like the Scheduler. Pure and single-threaded.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/scheduler.h"

namespace triglav::dp {

// With loss repair, an uplink marked lossy still takes striped packets while it loses
// less than this: each loss then costs a wait for its repair, not the flow's rate.
inline constexpr double kRepairLossLimit = 0.15;
inline bool avoid_lossy(const UplinkView& v, bool repair) noexcept {
  return v.lossy && (!repair || !(v.packet_loss < kRepairLossLimit));
}

class Striper {
 public:
  static constexpr double kProbeGain = 1.25;
  static constexpr double kDefaultRateBps = 10e6;  // an uplink whose rate is not known yet
  static constexpr double kMinRateBps = 1e6;
  static constexpr std::int64_t kBudgetMarginNs = 20'000'000;
  // The fastest uplink takes a starting flow alone only this much ahead of the others.
  static constexpr double kClearGapNs = 5'000'000;
  // Updates with a load (above kDefaultRateBps) and no queue before the delivered rate
  // counts as the capacity anyway.
  static constexpr int kClearReports = 4;
  // What losing a packet costs, counted into its expected arrival (see above).
  static constexpr double kLossPenaltyNs = 200e6;

  // The uplinks' latest measurements (index = uplink id). repair_ns > 0: the peer asks
  // for lost packets and gets them again (dataplane/repair.h), so a loss costs the flow
  // that wait instead of kLossPenaltyNs, and a lossy uplink is avoided only when it loses
  // kRepairLossLimit or more (avoid_lossy).
  void update(std::span<const UplinkView> views, std::int64_t repair_ns = 0) noexcept;
  // The uplink (of `allowed`) where a packet of `bytes` arrives first, accounted as
  // queued there; -1 if none is allowed.
  int pick(UplinkMask allowed, std::size_t bytes, std::int64_t now_ns) noexcept;
  // Predicted arrival (ns from now) of a packet of `bytes` on uplink u, for tests.
  double arrival_ns(unsigned u, std::size_t bytes, std::int64_t now_ns) noexcept;
  double queued(unsigned u) const noexcept { return lanes_[u].queued; }

 private:
  struct Lane {
    double owd_ns = 0;
    double loss_ns = 0;  // what its packet loss costs a packet, on average
    double bytes_per_ns = kDefaultRateBps / 8e9;
    double budget = 0;   // bytes
    double capacity_bps = 0;  // delivered while it last held a queue; 0: never seen
    int loaded_reports = 0;   // updates with a load and no queue, while capacity_bps is 0
    double queued = 0;   // bytes, as of at_ns
    std::int64_t at_ns = 0;
  };
  void drain(Lane& l, std::int64_t now_ns) noexcept;
  int pick_clear(UplinkMask allowed, std::size_t bytes, std::int64_t now_ns) noexcept;
  std::array<Lane, kMaxUplinks> lanes_{};
  UplinkMask suspect_ = 0;
  UplinkMask lossy_ = 0;
  UplinkMask clear_ = 0;  // uplinks showing no queue (dp::queueing false)
};

}  // namespace triglav::dp
