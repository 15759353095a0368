#include "dataplane/reassembly.h"

#include <algorithm>
#include <cstring>

#include "dataplane/wire.h"

namespace triglav::dp {

Reassembly::Reassembly(const ReassemblyConfig& cfg) : cfg_(cfg) {
  cfg_.entries = std::max<std::uint32_t>(cfg_.entries, 1);
  stride_ = cfg_.headroom + cfg_.max_packet;
  words_ = (cfg_.max_packet / kFragmentGrain + 1 + 63) / 64;
  entries_.resize(cfg_.entries);
  mem_.resize(stride_ * cfg_.entries);
  bits_.resize(words_ * cfg_.entries);
}

std::uint32_t Reassembly::in_progress() const noexcept {
  return static_cast<std::uint32_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.state == State::Filling; }));
}

void Reassembly::free_entry(std::uint32_t e) noexcept {
  entries_[e] = Entry{};
  std::fill_n(bits(e), words_, 0);
}

void Reassembly::release(std::uint32_t entry) noexcept {
  if (entry < entries_.size() && entries_[entry].state == State::Writing) free_entry(entry);
}

void Reassembly::expire(std::int64_t now) noexcept {
  for (std::uint32_t e = 0; e < entries_.size(); ++e) {
    if (entries_[e].state == State::Filling && now - entries_[e].first_ns >= cfg_.timeout_ns) {
      free_entry(e);
      ++stats_.timeouts;
    }
  }
}

// A free entry for packet k, else the one filling longest, given up; entries_.size()
// when every entry is being written.
std::uint32_t Reassembly::claim(const Key& k, std::int64_t now) noexcept {
  auto e = static_cast<std::uint32_t>(entries_.size());
  for (std::uint32_t i = 0; i < entries_.size(); ++i) {
    const Entry& x = entries_[i];
    if (x.state == State::Free) {
      e = i;
      break;
    }
    if (x.state == State::Filling && (e == entries_.size() || x.first_ns < entries_[e].first_ns)) e = i;
  }
  if (e == entries_.size()) return e;
  if (entries_[e].state == State::Filling) {
    free_entry(e);
    ++stats_.overflows;
  }
  entries_[e].key = k;
  entries_[e].state = State::Filling;
  entries_[e].first_ns = now;
  return e;
}

// Sets the grains [offset, offset + len) cover; false (nothing set) if one already was.
bool Reassembly::mark(std::uint32_t e, std::uint32_t offset, std::uint32_t len) noexcept {
  std::uint64_t* b = bits(e);
  const std::uint32_t first = offset / kFragmentGrain;
  const std::uint32_t end = (offset + len + kFragmentGrain - 1) / kFragmentGrain;
  for (std::uint32_t g = first; g < end; ++g)
    if (b[g / 64] >> (g % 64) & 1) return false;
  for (std::uint32_t g = first; g < end; ++g) b[g / 64] |= std::uint64_t{1} << (g % 64);
  return true;
}

Reassembly::Verdict Reassembly::offer(const Piece& p, std::int64_t now, Done& out) noexcept {
  expire(now);
  auto e = static_cast<std::uint32_t>(entries_.size());
  for (std::uint32_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].state == State::Filling && entries_[i].key == p.key) {
      e = i;
      break;
    }
  }
  const bool found = e != entries_.size();
  const std::uint64_t end = std::uint64_t{p.offset} + p.len;
  const bool off_grid = p.offset % kFragmentGrain != 0 || (!p.last && p.len % kFragmentGrain != 0);
  if (p.len == 0 || off_grid || end > cfg_.max_packet) {
    if (found) free_entry(e);
    ++stats_.bad;
    return Verdict::Bad;
  }
  if (!found) {
    e = claim(p.key, now);
    if (e == entries_.size()) {
      ++stats_.overflows;
      return Verdict::NoRoom;
    }
  }
  Entry& x = entries_[e];
  // The last piece fixes the end: no piece may reach past it, and there is one last.
  const bool past_end = p.last ? x.total != 0 || x.max_end > end : x.total != 0 && end >= x.total;
  if (past_end || !mark(e, p.offset, p.len)) {
    free_entry(e);
    ++stats_.bad;
    return Verdict::Bad;
  }
  std::memcpy(mem(e) + cfg_.headroom + p.offset, p.data, p.len);
  x.got += p.len;
  x.max_end = std::max(x.max_end, static_cast<std::uint32_t>(end));
  if (p.last) x.total = static_cast<std::uint32_t>(end);
  ++stats_.pieces;
  if (x.total == 0 || x.got != x.total) return Verdict::Held;
  x.state = State::Writing;
  ++stats_.packets;
  out = {e, mem(e) + cfg_.headroom, x.total};
  return Verdict::Complete;
}

}  // namespace triglav::dp
