#include "control/path_mtu.h"

#include <algorithm>

namespace triglav::ctl {

void PathMtuSearch::start(std::size_t need, std::int64_t now_ns, bool force) {
  if (need < kFloor) need = kFloor;
  if (!force && need == need_ && (state_ == State::Trying || (state_ == State::Done && now_ns - done_ns_ < kRepeatNs)))
    return;
  need_ = need;
  state_ = State::Trying;
  good_ = bad_ = 0;
  trying_ = need;
  sent_ = rounds_ = 0;
  last_tick_ns_ = now_ns;
}

std::size_t PathMtuSearch::due(std::int64_t now_ns) {
  if (state_ != State::Trying || sent_ >= 2 || (sent_ == 1 && now_ns - sent_ns_ < kSpacingNs)) return 0;
  ++sent_;
  sent_ns_ = now_ns;
  return trying_;
}

bool PathMtuSearch::answered(std::size_t size, std::int64_t now_ns) {
  if (state_ != State::Trying || size != trying_ || sent_ == 0) return false;  // late, or another search's
  good_ = std::max(good_, size);
  return settle(now_ns);
}

bool PathMtuSearch::tick(std::int64_t now_ns, std::int64_t wait_ns) {
  const std::int64_t wait = std::max(kWaitNs, wait_ns);
  const bool resumed = now_ns - last_tick_ns_ > wait;
  last_tick_ns_ = now_ns;
  if (state_ == State::Done && now_ns - done_ns_ >= kRepeatNs) start(need_, now_ns, true);
  if (state_ != State::Trying || sent_ == 0) return false;
  if (resumed) {  // not watched meanwhile: an answer may have come unseen
    sent_ = 0;
    return false;
  }
  if (sent_ < 2 || now_ns - sent_ns_ < wait) return false;
  lost_ += sent_;
  if (trying_ == need_ && ++rounds_ < 2) {  // the size that matters most: once more
    sent_ = 0;
    return false;
  }
  bad_ = bad_ == 0 ? trying_ : std::min(bad_, trying_);
  return settle(now_ns);
}

bool PathMtuSearch::limit(std::size_t max_datagram, std::int64_t now_ns) {
  kernel_ = need_ != 0 && max_datagram < need_ && max_datagram >= kFloor ? max_datagram : 0;
  if (kernel_ == 0 || (result_ != 0 && result_ <= kernel_)) return false;  // nothing the result does not say
  state_ = State::Done;
  done_ns_ = now_ns;
  result_ = kernel_;
  return true;
}

bool PathMtuSearch::settle(std::int64_t now_ns) {
  std::size_t next = 0;
  if (good_ == need_) {
    next = 0;  // the path carries everything the tunnel sends
  } else if (good_ == 0) {
    next = trying_ == need_ && need_ != kFloor ? kFloor : 0;  // not even the smallest: unknown
  } else if (bad_ - good_ > kResolution) {
    next = good_ + (bad_ - good_) / 2;
  }
  if (next != 0) {
    trying_ = next;
    sent_ = 0;
    return false;
  }
  state_ = State::Done;
  done_ns_ = now_ns;
  const std::size_t before = result_;
  result_ = kernel_ != 0 && (good_ == 0 || good_ > kernel_) ? kernel_ : good_;
  return result_ != before;
}

}  // namespace triglav::ctl
