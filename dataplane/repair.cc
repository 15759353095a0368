#include "dataplane/repair.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>

#include "dataplane/mix.h"

namespace triglav::dp {
namespace {

std::uint64_t load(std::uint64_t& w, std::memory_order o = std::memory_order_relaxed) noexcept {
  return std::atomic_ref<std::uint64_t>(w).load(o);
}
void store(std::uint64_t& w, std::uint64_t v, std::memory_order o = std::memory_order_relaxed) noexcept {
  std::atomic_ref<std::uint64_t>(w).store(v, o);
}

}  // namespace

void RepairStore::Free::operator()(void* p) const noexcept { std::free(p); }

RepairStore::RepairStore(std::size_t entries, std::size_t max_bytes)
    : max_bytes_(max_bytes) {
  const std::size_t buckets = std::bit_ceil(std::max<std::size_t>(entries, 2)) / 2;
  mask_ = buckets - 1;
  stride_ = kData + (max_bytes + 7) / 8;
  // calloc: zero versions and stamps, and pages taken only as entries are written.
  words_.reset(static_cast<std::uint64_t*>(std::calloc(buckets * 2 * stride_, sizeof(std::uint64_t))));
  if (!words_) throw std::bad_alloc();
}

std::size_t RepairStore::bucket(std::uint64_t group, std::uint32_t seq) const noexcept {
  return static_cast<std::size_t>(mix64(group * 0x9e3779b97f4a7c15ull ^ seq)) & mask_;
}

void RepairStore::put(std::uint64_t group, std::uint32_t seq, std::uint32_t flow_seq, bool partial,
                      const std::uint8_t* data, std::size_t len, std::int64_t now_ns) noexcept {
  if (len > max_bytes_) return;
  const std::size_t b = bucket(group, seq) * 2;
  // The one kept under this key (sent again: a new version), else the older of the
  // bucket's two (the owner reads its own writes: no lock needed).
  const auto same = [&](std::uint64_t* x) {
    return load(x[kVersion]) != 0 && load(x[kGroup]) == group && static_cast<std::uint32_t>(load(x[kSeqs])) == seq;
  };
  std::uint64_t* e = entry(b);
  std::uint64_t* other = entry(b + 1);
  if (same(other) || (!same(e) && load(other[kStamp]) < load(e[kStamp]))) e = other;
  const std::uint64_t v = load(e[kVersion]);
  store(e[kVersion], v + 1);
  std::atomic_thread_fence(std::memory_order_release);
  store(e[kGroup], group);
  store(e[kSeqs], std::uint64_t{seq} | std::uint64_t{flow_seq} << 32);
  store(e[kMeta], std::uint64_t{static_cast<std::uint32_t>(len)} | std::uint64_t{partial} << 32);
  store(e[kStamp], static_cast<std::uint64_t>(now_ns));
  for (std::size_t off = 0, i = kData; off < len; off += 8, ++i) {
    std::uint64_t w = 0;
    std::memcpy(&w, data + off, std::min<std::size_t>(8, len - off));
    store(e[i], w);
  }
  store(e[kVersion], v + 2, std::memory_order_release);
}

bool RepairStore::take(std::uint64_t group, std::uint32_t seq, std::int64_t now_ns, std::uint8_t* out,
                       std::size_t room, Found& found) noexcept {
  const std::size_t b = bucket(group, seq) * 2;
  for (std::size_t k = 0; k < 2; ++k) {
    std::uint64_t* e = entry(b + k);
    const std::uint64_t v = load(e[kVersion], std::memory_order_acquire);
    if ((v & 1) != 0 || v == 0) continue;  // being written, or never written
    const std::uint64_t seqs = load(e[kSeqs]);
    if (load(e[kGroup]) != group || static_cast<std::uint32_t>(seqs) != seq) continue;
    const std::uint64_t meta = load(e[kMeta]);
    const auto stamp = static_cast<std::int64_t>(load(e[kStamp]));
    const auto len = static_cast<std::uint32_t>(meta);
    if (len > room || len > max_bytes_ || now_ns - stamp > kMaxAgeNs) continue;
    for (std::size_t off = 0, i = kData; off < len; off += 8, ++i) {
      const std::uint64_t w = load(e[i]);
      std::memcpy(out + off, &w, std::min<std::size_t>(8, len - off));
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (load(e[kVersion]) != v) continue;  // rewritten meanwhile: the copy is torn
    // Once per version: the first reader wins. Versions only grow, so the mark only
    // grows too: a reader that validated an older version and marks late must not lower
    // it (the newer version would then be handed out twice).
    std::atomic_ref<std::uint64_t> taken(e[kTaken]);
    std::uint64_t mark = taken.load(std::memory_order_relaxed);
    bool mine = false;
    while (mark < v && !(mine = taken.compare_exchange_weak(mark, v, std::memory_order_relaxed))) {
    }
    if (!mine) continue;
    found.flow_seq = static_cast<std::uint32_t>(seqs >> 32);
    found.len = len;
    found.partial = (meta >> 32) != 0;
    return true;
  }
  return false;
}

RepairStores::RepairStores(unsigned workers, std::size_t entries, std::size_t max_bytes) {
  for (unsigned w = 0; w < workers; ++w) stores.push_back(std::make_unique<RepairStore>(entries, max_bytes));
}

}  // namespace triglav::dp
