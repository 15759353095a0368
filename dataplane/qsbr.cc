#include "dataplane/qsbr.h"

#include <algorithm>
#include <cstdint>

namespace triglav::dp {

void Qsbr::retire(std::function<void()> what) { pending_.push_back(std::move(what)); }

void Qsbr::commit() {
  if (pending_.empty()) return;
  // Committed at epoch e (after the snapshot that no longer holds them was published):
  // safe once every online worker has seen e + 1 or later.
  const std::uint64_t e = global_.fetch_add(1, std::memory_order_seq_cst);
  for (auto& f : pending_) retired_.emplace_back(e, std::move(f));
  pending_.clear();
}

std::size_t Qsbr::reclaim() {
  std::uint64_t min_seen = UINT64_MAX;
  for (const auto& s : slots_) {
    const std::uint64_t v = s.seen.load(std::memory_order_seq_cst);
    if (v != 0) min_seen = std::min(min_seen, v);
  }
  auto keep = std::stable_partition(retired_.begin(), retired_.end(),
                                    [&](const auto& r) { return r.first >= min_seen; });
  std::vector<std::function<void()>> run;
  for (auto it = keep; it != retired_.end(); ++it) run.push_back(std::move(it->second));
  retired_.erase(keep, retired_.end());
  for (auto& f : run) f();
  return retired_.size();
}

void Qsbr::drain() {
  for (auto& r : retired_) r.second();
  retired_.clear();
  for (auto& f : pending_) f();
  pending_.clear();
}

}  // namespace triglav::dp
