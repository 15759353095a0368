#include "dataplane/snapshot.h"

namespace triglav::dp {

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
  return r;
}

void SnapshotHolder::publish(std::unique_ptr<Snapshot> next) {
  Snapshot* old = cur_.exchange(next.release(), std::memory_order_acq_rel);
  qsbr_.retire([old] { delete old; });
  qsbr_.commit();  // the grace period of everything retired so far starts now
}

}  // namespace triglav::dp
