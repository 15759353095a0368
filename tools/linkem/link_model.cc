#include "tools/linkem/link_model.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace triglav::linkem {

std::int64_t Direction::jitter() {
  if (p_.jitter_ns <= 0) return 0;
  std::normal_distribution<double> n(0.0, static_cast<double>(p_.jitter_ns));
  return static_cast<std::int64_t>(n(rng_));
}

std::size_t Direction::backlog_bytes(std::int64_t now_ns) const noexcept {
  if (p_.rate_bps <= 0 || busy_until_ns_ <= now_ns) return 0;
  return static_cast<std::size_t>(static_cast<double>(busy_until_ns_ - now_ns) * p_.rate_bps / 8e9);
}

Verdict Direction::on_packet(std::int64_t now_ns, std::size_t bytes) {
  Verdict v;
  ++stats_.packets;
  stats_.bytes += bytes;
  if (p_.down) {
    v.fate = Fate::DropOutage;
    ++stats_.drop_outage;
    return v;
  }
  // Bursty loss: a two-state chain stepped once per packet.
  if (p_.ge_enter > 0 || ge_bad_) {
    ge_bad_ = ge_bad_ ? uniform() >= p_.ge_exit : uniform() < p_.ge_enter;
    if (ge_bad_) {
      v.fate = Fate::DropBurst;
      ++stats_.drop_burst;
      return v;
    }
  }
  if (p_.loss > 0 && uniform() < p_.loss) {
    v.fate = Fate::DropLoss;
    ++stats_.drop_loss;
    return v;
  }
  // The bottleneck: packets leave one after another at the link rate.
  std::int64_t leave = now_ns;
  if (p_.rate_bps > 0) {
    if (backlog_bytes(now_ns) + bytes > p_.queue_bytes) {
      v.fate = Fate::DropQueue;
      ++stats_.drop_queue;
      return v;
    }
    const auto tx = static_cast<std::int64_t>(static_cast<double>(bytes) * 8e9 / p_.rate_bps);
    const std::int64_t start = std::max(now_ns, busy_until_ns_);
    busy_until_ns_ = start + tx;
    leave = busy_until_ns_;
  }
  v.queued_ns = leave - now_ns;
  stats_.max_queued_ns = std::max(stats_.max_queued_ns, v.queued_ns);
  v.copies = (p_.duplicate > 0 && uniform() < p_.duplicate) ? 2 : 1;
  for (int i = 0; i < v.copies; ++i) {
    std::int64_t t = leave + std::max<std::int64_t>(0, p_.delay_ns + jitter());
    if (!p_.reorder) t = std::max(t, last_deliver_ns_);
    last_deliver_ns_ = std::max(last_deliver_ns_, t);
    v.deliver_ns[i] = t;
  }
  stats_.delivered += static_cast<std::uint64_t>(v.copies);
  if (v.copies == 2) ++stats_.duplicated;
  return v;
}

}  // namespace triglav::linkem
