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

std::size_t write_generated(std::uint8_t* p, std::size_t room, const Generator& g, unsigned n) noexcept {
  const std::size_t len = std::clamp<std::size_t>(g.len, 28, std::min<std::size_t>(room, 65535));
  const unsigned stream = g.streams > 0 ? n % g.streams : 0;
  std::memset(p, 0, len);
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(len >> 8);
  p[3] = static_cast<std::uint8_t>(len);
  p[4] = static_cast<std::uint8_t>(n >> 8);  // identification
  p[5] = static_cast<std::uint8_t>(n);
  p[6] = 0x40;  // don't fragment
  p[8] = 64;
  p[9] = 17;
  std::memcpy(p + 12, &g.src_be, 4);
  std::memcpy(p + 16, &g.dst_be, 4);
  std::uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += std::uint32_t{p[i]} << 8 | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const auto csum = static_cast<std::uint16_t>(~sum);
  p[10] = static_cast<std::uint8_t>(csum >> 8);
  p[11] = static_cast<std::uint8_t>(csum);
  const unsigned sport = 40000 + stream, dport = 5201;
  const std::size_t udp_len = len - 20;
  p[20] = static_cast<std::uint8_t>(sport >> 8);
  p[21] = static_cast<std::uint8_t>(sport);
  p[22] = static_cast<std::uint8_t>(dport >> 8);
  p[23] = static_cast<std::uint8_t>(dport);
  p[24] = static_cast<std::uint8_t>(udp_len >> 8);
  p[25] = static_cast<std::uint8_t>(udp_len);  // checksum 0: none (IPv4 allows it)
  return len;
}

std::size_t seal_transport(Session& s, unsigned sender, PacketType type, std::uint8_t* buf,
                           std::size_t body, std::uint8_t aux) noexcept {
  Header h;
  h.type = type;
  h.aux = aux;
  h.flags = flag::kEncrypted;
  h.uplink = s.uplink;
  h.receiver = s.remote_index;
  auto& next = s.tx[sender].next_counter;
  const std::uint64_t n = next.load(std::memory_order_relaxed);
  if (n >= kRejectAfterMessages) return 0;  // never reuse a nonce
  next.store(n + 1, std::memory_order_relaxed);
  h.counter = std::uint64_t{sender} << kSenderShift | n;
  encode_header(h, buf);
  if (!s.tx_key.seal(h.counter, {buf, kHeaderLen}, buf + kHeaderLen, body)) return 0;
  return kHeaderLen + body + kTagLen;
}

bool keys_used_up(const Session& s, unsigned sender) noexcept {
  return s.tx[sender].next_counter.load(std::memory_order_relaxed) >= kRejectAfterMessages;
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
