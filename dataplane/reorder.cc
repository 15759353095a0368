#include "dataplane/reorder.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>

#include "dataplane/mix.h"

namespace triglav::dp {
namespace {

// a - b in sequence space: negative when a is older.
inline std::int32_t diff(std::uint32_t a, std::uint32_t b) noexcept { return static_cast<std::int32_t>(a - b); }

bool power_of_two(std::uint32_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

constexpr unsigned kProbe = 8;  // table slots searched per lookup

}  // namespace

Reorder::Reorder(const ReorderConfig& cfg) : cfg_(cfg) {
  if (!power_of_two(cfg_.per_flow)) cfg_.per_flow = 4096;
  if (!power_of_two(cfg_.flows)) cfg_.flows = 256;
  if (!power_of_two(cfg_.senders)) cfg_.senders = 256;
  senders_.resize(cfg_.senders);
  flows_.resize(cfg_.flows);
  // Both from calloc/malloc, untouched: pages are taken as packets are held, so the
  // bounds cost memory only when traffic needs them.
  window_.reset(static_cast<std::uint32_t*>(std::calloc(std::size_t{cfg_.flows} * cfg_.per_flow, sizeof(std::uint32_t))));
  pool_.reset(static_cast<std::uint8_t*>(std::malloc(std::size_t{cfg_.slots} * cfg_.slot_bytes)));
  if (!window_ || !pool_) throw std::bad_alloc();
  slots_.resize(cfg_.slots);
  free_.reserve(cfg_.slots);
  for (std::uint32_t i = cfg_.slots; i-- > 0;) free_.push_back(i);
  waiting_.reserve(cfg_.flows);
  ready_.reserve(cfg_.slots);
  asks_.reserve(kMaxAsks);
}

Reorder::Sender* Reorder::sender_for(std::uint64_t client, std::uint8_t sender, std::int64_t now) noexcept {
  const std::uint64_t key = mix64(client ^ (std::uint64_t{sender} + 1) * 0x9e3779b97f4a7c15ull) | 1;
  const std::uint32_t mask = cfg_.senders - 1;
  Sender* spare = nullptr;
  for (unsigned i = 0; i < kProbe; ++i) {
    Sender& s = senders_[(key + i) & mask];
    if (s.key == key) return &s;
    if (spare == nullptr && (s.key == 0 || now - s.last_ns > cfg_.flow_idle_ns)) spare = &s;
  }
  if (spare == nullptr) return nullptr;
  *spare = Sender{};
  spare->key = key;
  spare->client = client;
  spare->id = sender;
  return spare;
}

Reorder::Flow* Reorder::flow_for(std::uint64_t key, std::uint32_t sender, std::uint32_t flow_seq,
                                 std::int64_t now) noexcept {
  const std::uint32_t mask = cfg_.flows - 1;
  Flow* spare = nullptr;
  for (unsigned i = 0; i < kProbe; ++i) {
    Flow& f = flows_[(key + i) & mask];
    if (f.key == key && f.sender == sender && now - f.last_ns <= cfg_.flow_idle_ns) return &f;
    if (f.key == key) {  // the same flow after a long silence, or its sender's entry was reused
      spare = &f;
      break;
    }
    if (spare == nullptr && (f.key == 0 || now - f.last_ns > cfg_.flow_idle_ns)) spare = &f;
  }
  if (spare == nullptr) return nullptr;
  if (spare->held > 0) drop_flow(*spare, now);
  *spare = Flow{};
  spare->key = key;
  spare->sender = sender;
  spare->next = flow_seq;
  spare->scan = flow_seq;
  return spare;
}

std::uint32_t Reorder::take_slot() noexcept {
  if (free_.empty()) return kNone;
  const std::uint32_t s = free_.back();
  free_.pop_back();
  return s;
}

Reorder::Verdict Reorder::offer(const Packet& p, std::int64_t wait_ns, std::int64_t now) noexcept {
  Sender* s = p.uplink < kMaxUplinks ? sender_for(p.client, p.sender, now) : nullptr;
  if (s == nullptr) {
    ++stats_.untracked;
    return Verdict::Deliver;
  }
  s->last_ns = now;
  if (!p.resent) {  // a packet sent again says nothing of what its uplink moved past
    std::uint32_t& top = s->max_seq[p.uplink];
    // After a silence the sender may count anew (it restarted, or lost its state for us):
    // what this uplink delivered before says nothing now.
    const bool fresh = !(s->seen >> p.uplink & 1) || now - s->seen_ns[p.uplink] > cfg_.uplink_active_ns;
    if (fresh || diff(p.send_seq, top) > 0) top = p.send_seq;
    s->seen |= UplinkMask{1} << p.uplink;
    s->seen_ns[p.uplink] = now;
  }
  const auto sender_index = static_cast<std::uint32_t>(s - senders_.data());
  const std::uint64_t key = mix64(p.flow ^ s->key * 0xc2b2ae3d27d4eb4full) | 1;
  Flow* f = flow_for(key, sender_index, p.flow_seq, now);
  if (f == nullptr) {
    ++stats_.untracked;
    return Verdict::Deliver;
  }
  f->wait_ns = s->fill.wait(wait_ns, now);
  f->repair_ns = std::min(p.repair_ns, kMaxWaitNs);
  f->last_ns = now;
  std::int32_t d = diff(p.flow_seq, f->next);
  Verdict v = Verdict::Deliver;
  if (d <= -static_cast<std::int32_t>(cfg_.per_flow)) {
    // Far behind: not a late packet but a flow counting anew (its sender's state for it
    // was made again). Follow it from here.
    ++stats_.overflows;
    while (f->held > 0) skip_gap(*f, now);
    f->next = p.flow_seq;
    d = 0;
  }
  if (d < 0) {
    ++stats_.late;
    // Its gap was given up too soon (or a wait was not yet learnt): wait longer.
    if (d > -static_cast<std::int32_t>(cfg_.per_flow)) {
      // (With repair, a gap is given up when its repair is overdue, not for want of a
      // longer wait; a repair that comes late changes nothing either: waiting longer for
      // repairs holds the flow's packets longer, which costs a flow more than the few
      // that come late.)
      if (!p.resent && f->repair_ns == 0) s->fill.note(1.5 * static_cast<double>(f->wait_ns), now);
    }
  } else if (d == 0) {
    ++stats_.in_order;
    if (f->held > 0 && !p.resent) s->fill.note(static_cast<double>(now - slots_[at(*f, f->first)].arrived_ns), now);
    if (p.resent) ++stats_.repaired;
    f->last_send = p.send_seq;
    ++f->next;
    release_run(*f, now);
  } else if (static_cast<std::uint32_t>(d) >= cfg_.per_flow || free_.empty() ||
             p.len > cfg_.slot_bytes - cfg_.headroom) {
    // Beyond the window, no slot left, or too big for one: give up this flow's gaps up
    // to p (a packet is never cut to fit).
    ++stats_.overflows;
    while (f->held > 0) skip_gap(*f, now);
    f->next = p.flow_seq + 1;
    f->last_send = p.send_seq;
    v = ready_.empty() ? Verdict::Deliver : Verdict::DrainFirst;
  } else {
    std::uint32_t& c = cell(*f, p.flow_seq);
    if (c != 0) return Verdict::Duplicate;
    const std::uint32_t slot = take_slot();
    std::memcpy(pool_.get() + static_cast<std::size_t>(slot) * cfg_.slot_bytes + cfg_.headroom, p.data, p.len);
    slots_[slot] = Slot{now, 0, p.send_seq, p.flow_seq, p.len, p.partial, false, now};
    c = slot + 1;
    if (f->held > 0 && diff(p.flow_seq, f->scan) < 0) {
      // Inside a gap already asked for (a packet sent again, or a straggler): it waits as
      // the held packet that asked does, should it come to stand first.
      std::uint32_t b = p.flow_seq + 1;
      for (std::uint32_t i = 0; i < cfg_.per_flow && at(*f, b) == kNone; ++i) ++b;
      if (const std::uint32_t asker = at(*f, b); asker != kNone) {
        slots_[slot].asked_ns = slots_[asker].asked_ns;
        slots_[slot].asked_lost = slots_[asker].asked_lost;
        slots_[slot].since_ns = slots_[asker].since_ns;
      }
    }
    ++held_total_;
    ++stats_.held;
    if (p.resent) ++stats_.repaired;
    if (f->held++ == 0) {
      f->wait_pos = static_cast<std::uint32_t>(waiting_.size());
      waiting_.push_back(static_cast<std::uint32_t>(f - flows_.data()));
      f->deadline_ns = now + f->wait_ns;
      f->first = f->last = p.flow_seq;
      f->scan = f->next;
    } else if (diff(p.flow_seq, f->first) < 0) {
      f->first = p.flow_seq;
    } else if (diff(p.flow_seq, f->last) > 0) {
      f->last = p.flow_seq;
    }
    v = Verdict::Held;
  }
  // This packet may have moved its uplink past a gap of any waiting flow of its sender.
  for (std::size_t i = 0; i < waiting_.size();) {
    const std::uint32_t fi = waiting_[i];
    if (flows_[fi].sender == sender_index) settle(flows_[fi], p.uplinks, now);
    if (i < waiting_.size() && waiting_[i] == fi) ++i;  // else it left, and another took place i
  }
  return v;
}

void Reorder::Learnt::note(double took, std::int64_t now) noexcept {
  const double kept = ns * std::max(0.0, 1.0 - static_cast<double>(now - at_ns) / kFillMemoryNs);
  ns = std::min(std::max(kept, took), static_cast<double>(kMaxWaitNs));
  at_ns = now;
}

std::int64_t Reorder::Learnt::wait(std::int64_t floor, std::int64_t now) const noexcept {
  const double kept = ns * std::max(0.0, 1.0 - static_cast<double>(now - at_ns) / kFillMemoryNs);
  const auto learnt = static_cast<std::int64_t>(kept * 1.25) + 2'000'000;
  return std::min(std::max(floor, learnt), kMaxWaitNs);
}

void Reorder::emit(Flow& f, std::uint32_t seq, std::int64_t now) noexcept {
  std::uint32_t& c = cell(f, seq);
  const std::uint32_t slot = c - 1;
  c = 0;
  --f.held;
  --held_total_;
  const Slot& s = slots_[slot];
  f.last_send = s.send_seq;
  const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, (now - s.arrived_ns) / 1'000'000));
  ++stats_.residence[std::min<int>(std::bit_width(ms), ReorderStats::kResidenceBuckets - 1)];
  ready_.push_back({slot, pool_.get() + static_cast<std::size_t>(slot) * cfg_.slot_bytes + cfg_.headroom, s.len,
                    s.partial});
  if (f.held == 0) {  // leaves waiting_
    const std::uint32_t pos = f.wait_pos;
    waiting_[pos] = waiting_.back();
    flows_[waiting_[pos]].wait_pos = pos;
    waiting_.pop_back();
  }
}

void Reorder::release_run(Flow& f, std::int64_t now) noexcept {
  while (f.held > 0 && at(f, f.next) != kNone) {
    emit(f, f.next, now);
    ++f.next;
  }
  if (f.held > 0 && diff(f.first, f.next) < 0) f.first = first_held(f);  // once per advance
  if (f.held > 0) f.deadline_ns = deadline_of(f);
}

std::int64_t Reorder::deadline_of(const Flow& f) noexcept {
  const Slot& s = slots_[at(f, f.first)];
  // A gap asked for when known lost waits for its repair, from when it was asked. One
  // asked only because an uplink went quiet is not known lost: it also waits as long as
  // it would have without repair.
  if (s.asked_ns != 0 && s.asked_lost) return s.asked_ns + f.repair_ns;
  if (s.asked_ns != 0) return std::max(s.asked_ns + f.repair_ns, s.since_ns + f.wait_ns);
  return s.since_ns + f.wait_ns;
}

std::uint32_t Reorder::first_held(const Flow& f) noexcept {
  std::uint32_t seq = f.next;
  for (std::uint32_t i = 0; i < cfg_.per_flow && at(f, seq) == kNone; ++i) ++seq;
  return seq;
}

void Reorder::skip_gap(Flow& f, std::int64_t now) noexcept {
  f.next = f.first;
  release_run(f, now);
}

bool Reorder::moved_past(const Sender& s, UplinkMask candidates, std::uint32_t sent, std::int64_t left_window,
                         std::int64_t now, std::int64_t quiet_ns) const noexcept {
  for (UplinkMask m = candidates | s.seen; m != 0; m &= m - 1) {
    const auto u = static_cast<unsigned>(__builtin_ctzll(m));
    const bool candidate = (candidates >> u & 1) != 0;
    const std::int64_t window = candidate ? cfg_.uplink_active_ns : left_window;
    const std::int64_t silent = (s.seen >> u & 1) ? now - s.seen_ns[u] : INT64_MAX;
    if (silent > quiet_ns) continue;  // with quiet_ns: it carries nothing now
    const bool heard = silent <= window;
    // A live uplink not heard from lately may carry it (nothing says it moved past);
    // one heard from lately has moved past once it delivered something sent after.
    if (heard ? diff(s.max_seq[u], sent) < 0 : candidate) return false;
  }
  return true;
}

void Reorder::settle(Flow& f, UplinkMask candidates, std::int64_t now) noexcept {
  const Sender& s = senders_[f.sender];
  // An uplink the peer no longer stripes over (or no longer live) brings only what was
  // in flight on it when it was left: that arrives within a wait of its last packet, so
  // it counts only that long after it (it was left for its losses, and holding every gap
  // of the next second for it cost each its whole wait).
  const std::int64_t left_window = std::min(cfg_.uplink_active_ns, f.wait_ns);
  if (f.repair_ns > 0) ask_lost(f, s, candidates, left_window, now);
  while (f.held > 0) {
    // The gap was sent before the first held packet.
    Slot& first = slots_[at(f, f.first)];
    if (!moved_past(s, candidates, first.send_seq, left_window, now)) return;
    if (first.asked_ns != 0 && !first.asked_lost) {  // asked for a quiet uplink, now known lost
      first.asked_lost = true;
      f.deadline_ns = deadline_of(f);
    }
    // Lost, and asked for: it waits for its repair until its deadline (expire()).
    if (f.repair_ns > 0 && diff(f.first, f.scan) < 0 && now < f.deadline_ns) return;
    ++stats_.lost_gaps;
    skip_gap(f, now);
  }
}

void Reorder::ask_lost(Flow& f, const Sender& s, UplinkMask candidates, std::int64_t left_window,
                       std::int64_t now) noexcept {
  std::uint32_t seq = f.next, prev = f.last_send;
  if (diff(f.scan, f.next) > 0) {
    seq = f.scan;
    prev = f.scan_prev;
  }
  // Send sequences grow with flow sequences (one sender numbers both as it sends), so the
  // gaps after one not known lost are not known lost either: the walk stops there and
  // goes on from there next time.
  while (diff(seq, f.last) < 0) {
    if (const std::uint32_t held = at(f, seq); held != kNone) {
      prev = slots_[held].send_seq;
      ++seq;
      continue;
    }
    std::uint32_t b = seq + 1;
    while (at(f, b) == kNone) ++b;  // stops at f.last at the latest
    Slot& after = slots_[at(f, b)];
    // An uplink gone quiet counts as past it: the sender may have stopped using it after
    // losing the gap's packet there, and nothing else would say so before the wait ran
    // out. (Asking for a packet still on its way costs a copy that the duplicate window
    // drops.)
    if (asks_.size() >= kMaxAsks || !moved_past(s, candidates, after.send_seq, left_window, now, kQuietNs)) break;
    after.asked_ns = now;
    after.asked_lost = moved_past(s, candidates, after.send_seq, left_window, now);
    asks_.push_back({s.client, s.id, prev, after.send_seq});
    ++stats_.repair_asked;
    if (b == f.first) f.deadline_ns = deadline_of(f);
    prev = after.send_seq;
    seq = b + 1;
  }
  f.scan = seq;
  f.scan_prev = prev;
}

void Reorder::expire(std::int64_t now) noexcept {
  for (std::size_t i = 0; i < waiting_.size();) {
    Flow& f = flows_[waiting_[i]];
    while (f.held > 0 && f.deadline_ns <= now) {
      // A gap known lost and not repaired in time was lost; any other ran out of wait.
      const Slot& first = slots_[at(f, f.first)];
      ++(first.asked_ns != 0 && first.asked_lost ? stats_.lost_gaps : stats_.timeout_gaps);
      skip_gap(f, now);
    }
    if (f.held > 0) ++i;  // else it left waiting_ and another took place i
  }
}

std::int64_t Reorder::next_deadline() const noexcept {
  std::int64_t t = INT64_MAX;
  for (std::uint32_t i : waiting_) t = std::min(t, flows_[i].deadline_ns);
  return t;
}

void Reorder::drop_flow(Flow& f, std::int64_t now) noexcept {
  while (f.held > 0) {
    ++stats_.overflows;
    skip_gap(f, now);
  }
}

}  // namespace triglav::dp
