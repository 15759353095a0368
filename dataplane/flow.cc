#include "dataplane/flow.h"

#include <cstring>

#include "dataplane/mix.h"

namespace triglav::dp {
namespace {

std::uint64_t load64(const std::uint8_t* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

bool has_ports(std::uint8_t proto) noexcept {
  return proto == 6 || proto == 17 || proto == 132 || proto == 136;  // TCP, UDP, SCTP, UDP-Lite
}

}  // namespace

std::uint64_t flow_hash(const std::uint8_t* p, std::size_t len) noexcept {
  std::uint64_t h = 0;
  if (len >= 20 && (p[0] >> 4) == 4) {
    const std::size_t ihl = std::size_t{p[0] & 0x0fu} * 4;
    const std::uint8_t proto = p[9];
    const bool first_fragment = ((p[6] & 0x1f) | p[7]) == 0;
    std::uint32_t ports = 0;
    if (has_ports(proto) && first_fragment && len >= ihl + 4) std::memcpy(&ports, p + ihl, 4);
    h = mix64(load64(p + 12) ^ (std::uint64_t{proto} << 32 | ports) * 0x9e3779b97f4a7c15ull);
  } else if (len >= 40 && (p[0] >> 4) == 6) {
    const std::uint8_t proto = p[6];
    std::uint32_t ports = 0;
    if (has_ports(proto) && len >= 44) std::memcpy(&ports, p + 40, 4);
    h = mix64(load64(p + 8) ^ mix64(load64(p + 16) ^ mix64(load64(p + 24) ^ mix64(load64(p + 32)))));
    h = mix64(h ^ (std::uint64_t{proto} << 32 | ports));
  } else {
    return 1;
  }
  return h == 0 ? 1 : h;
}

FlowTable::FlowTable(std::size_t capacity) {
  std::size_t n = kProbe;
  while (n < capacity) n <<= 1;
  slots_.resize(n);
  mask_ = n - 1;
}

void FlowTable::clear() noexcept {
  for (auto& e : slots_) e = Entry{};
  live_ = 0;
}

FlowTable::Entry& FlowTable::entry(std::uint64_t hash, std::int64_t now_ns, bool& fresh) noexcept {
  Entry* victim = nullptr;
  for (unsigned i = 0; i < kProbe; ++i) {
    Entry& e = slots_[(hash + i) & mask_];
    if (e.hash == hash) {
      e.last_ns = now_ns;
      fresh = false;
      return e;
    }
    const bool stale = e.hash != 0 && now_ns - e.last_ns > kIdleNs;
    if (e.hash == 0 || stale) {
      if (victim == nullptr || victim->hash != 0) victim = &e;  // prefer empty, then stale
    } else if (victim == nullptr || (victim->hash != 0 && e.last_ns < victim->last_ns)) {
      victim = &e;  // oldest live entry, if nothing better turns up
    }
  }
  if (victim->hash == 0) ++live_;
  *victim = Entry{};
  victim->hash = hash;
  victim->last_ns = now_ns;
  // A striped flow's sequence starts anywhere: a receiver still holding an older flow of
  // this hash sees a jump, not a replay of numbers it already passed.
  victim->seq = static_cast<std::uint32_t>(mix64(hash ^ static_cast<std::uint64_t>(now_ns)));
  fresh = true;
  return *victim;
}

UplinkMask FlowTable::route(std::uint64_t hash, std::int64_t now_ns, Scheduler& sched) noexcept {
  if (sched.config().strategy == Strategy::Redundant) return sched.pick(hash);
  bool fresh = false;
  Entry& e = entry(hash, now_ns, fresh);
  if (fresh) {
    e.uplink = sched.pick(hash);
  } else if (!(e.uplink & sched.usable_mask())) {
    e.uplink = sched.pick(hash);  // its uplink became unusable: move the flow now
    ++moved_;
  }
  return e.uplink;
}

std::uint32_t FlowTable::next_seq(std::uint64_t hash, std::int64_t now_ns) noexcept {
  bool fresh = false;
  return entry(hash, now_ns, fresh).seq++;
}

}  // namespace triglav::dp
