#include "dataplane/session.h"

#include <algorithm>

#include "crypto/aead.h"

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

std::size_t seal_transport(Session& s, unsigned sender, PacketType type, std::uint8_t* buf,
                           std::size_t body) noexcept {
  Header h;
  h.type = type;
  h.flags = flag::kEncrypted;
  h.uplink = s.uplink;
  h.receiver = s.remote_index;
  auto& next = s.tx[sender].next_counter;
  const std::uint64_t n = next.load(std::memory_order_relaxed);
  if (n >= kRejectAfterMessages) return 0;  // never reuse a nonce
  next.store(n + 1, std::memory_order_relaxed);
  h.counter = std::uint64_t{sender} << kSenderShift | n;
  encode_header(h, buf);
  s.tx_key.seal(h.counter, {buf, kHeaderLen}, buf + kHeaderLen, body);
  return kHeaderLen + body + kTagLen;
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
  return r;
}

void SnapshotHolder::publish(std::unique_ptr<Snapshot> next) {
  Snapshot* old = cur_.exchange(next.release(), std::memory_order_acq_rel);
  qsbr_.retire([old] { delete old; });
  qsbr_.commit();  // the grace period of everything retired so far starts now
}

}  // namespace triglav::dp
