#include "dataplane/snapshot.h"

#include <algorithm>
#include <bit>

namespace triglav::dp {

std::uint64_t next_group_serial() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void SubnetTable::add(const Subnet& s, const GroupRoute* route) {
  const int len = std::popcount(s.mask_be);
  auto at = levels_.begin();
  while (at != levels_.end() && at->len > len) ++at;
  if (at == levels_.end() || at->len != len) at = levels_.insert(at, Level{len, s.mask_be, {}});
  at->nets.emplace(s.net_be & s.mask_be, route);
}

std::unique_ptr<GroupRoute> make_route(Group* g, const std::array<Session*, kMaxUplinks>& uplinks,
                                       const std::array<UplinkView, kMaxUplinks>& views,
                                       const SchedulerConfig& sched, std::uint64_t version) {
  auto r = std::make_unique<GroupRoute>();
  r->group = g;
  r->uplinks = uplinks;
  r->sched = sched;
  r->version = version;
  for (std::size_t i = 0; i < kMaxUplinks; ++i) {
    r->views[i] = views[i];
    r->views[i].id = static_cast<std::uint8_t>(i);
    if (uplinks[i] == nullptr) r->views[i].state = HealthState::Down;
    else r->n_views = i + 1;
  }
  bool repair = false;  // the peer asks for and sends repairs (all sessions of a run agree)
  for (const Session* s : uplinks) repair = repair || (s != nullptr && s->peer_takes_repair);
  r->repair_ns = repair ? repair_wait_ns(r->views) : 0;
  if (g != nullptr) {
    g->reorder_wait_ns.store(reorder_wait_ns(r->views), std::memory_order_relaxed);
    g->repair_wait_ns.store(r->repair_ns, std::memory_order_relaxed);
    g->live_uplinks.store(live_uplinks(r->views), std::memory_order_relaxed);
  }
  r->striped = striped_uplinks(r->views, repair);
  return r;
}

UplinkMask striped_uplinks(std::span<const UplinkView> views, bool repair) noexcept {
  UplinkMask m = 0, suspect = 0, lossy = 0;
  for (std::size_t i = 0; i < views.size() && i < kMaxUplinks; ++i) {
    if (views[i].state == HealthState::Down) continue;
    m |= UplinkMask{1} << i;
    if (views[i].suspect) suspect |= UplinkMask{1} << i;
    if (avoid_lossy(views[i], repair)) lossy |= UplinkMask{1} << i;
  }
  return prefer_without(prefer_without(m, suspect), lossy);  // as Striper::pick leaves them
}

UplinkMask live_uplinks(std::span<const UplinkView> views) noexcept {
  UplinkMask live = 0;
  for (std::size_t i = 0; i < views.size() && i < kMaxUplinks; ++i)
    if (views[i].state != HealthState::Down) live |= UplinkMask{1} << i;
  return live;
}

std::int64_t reorder_wait_ns(const std::array<UplinkView, kMaxUplinks>& views) noexcept {
  double lo = -1, hi = -1;
  for (const UplinkView& v : views) {
    if (v.state == HealthState::Down || v.srtt_ms < 0) continue;
    lo = lo < 0 ? v.srtt_ms : std::min(lo, v.srtt_ms);
    hi = std::max(hi, v.srtt_ms);
  }
  if (lo < 0) return kDefaultReorderWaitNs;
  const double spread_ms = (hi - lo) / 2;  // one-way: half the RTTs' difference
  const double wait_ms = spread_ms * 1.25 + kReorderJitterMs;
  return static_cast<std::int64_t>(std::clamp(wait_ms, kReorderJitterMs, kMaxReorderWaitMs) * 1e6);
}

std::int64_t repair_wait_ns(const std::array<UplinkView, kMaxUplinks>& views) noexcept {
  double lo = -1;
  for (const UplinkView& v : views)
    if (v.state != HealthState::Down && v.srtt_ms >= 0) lo = lo < 0 ? v.srtt_ms : std::min(lo, v.srtt_ms);
  const double wait_ms = lo < 0 ? kReorderJitterMs : lo * 1.25 + kRepairSlackMs;
  return static_cast<std::int64_t>(std::clamp(wait_ms, kRepairSlackMs, kMaxReorderWaitMs) * 1e6);
}

void SnapshotHolder::publish(std::unique_ptr<Snapshot> next) {
  Snapshot* old = cur_.exchange(next.release(), std::memory_order_acq_rel);
  qsbr_.retire([old] { delete old; });
  qsbr_.commit();  // the grace period of everything retired so far starts now
}

}  // namespace triglav::dp
