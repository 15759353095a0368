// The path MTU of one uplink, as the control thread learns it: padded Pings (docs/
// PROTOCOL.md, "Ping padding") of chosen sizes, sent with the don't-fragment bit the
// kernel sets on UDP, whose Pongs say the size arrived. A hop that drops big packets
// without an ICMP message (common behind PPPoE, LTE and tunnels) is found this way,
// where the kernel's own discovery never hears of it.
//
// A search tries the size the tunnel MTU needs first (usually it arrives, and that is
// all), else the smallest size worth using, then halves the interval between the
// largest size that arrived and the smallest that did not, to within kResolution bytes.
// Each size is sent twice, kSpacingNs apart (one burst of loss should not take both),
// and waits at least kWaitNs (more on a slow path: the caller says) for an answer; the
// size the tunnel needs gets two such rounds before it counts as too big. A peer that
// answers not even the smallest (an older version, or a path losing everything) leaves
// the result unknown. A search runs when the uplink turns Healthy (the caller resets it
// for a new interface, transport or session after a failure) and again every kRepeatNs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace triglav::ctl {

class PathMtuSearch {
 public:
  static constexpr std::size_t kFloor = 548;         // 576-byte IPv4 minimum less IP and UDP headers
  static constexpr std::size_t kResolution = 8;
  static constexpr std::int64_t kWaitNs = 400'000'000;
  static constexpr std::int64_t kSpacingNs = 50'000'000;
  static constexpr std::int64_t kRepeatNs = 600'000'000'000;  // 10 minutes

  // Starts a search for datagrams of up to `need` bytes (UDP payload), unless one ran
  // for this need within kRepeatNs (force: regardless).
  void start(std::size_t need, std::int64_t now_ns, bool force = false);
  // The size of the probe to send now, or 0 (each size is asked for twice).
  std::size_t due(std::int64_t now_ns);
  // A probe of `size` bytes was answered. True when the result changed.
  bool answered(std::size_t size, std::int64_t now_ns);
  // Time passes: a size unanswered within max(kWaitNs, wait_ns) is taken as lost. A
  // search left alone for longer than that (the uplink was not Healthy) asks for its
  // size again instead. True when the result changed.
  bool tick(std::int64_t now_ns, std::int64_t wait_ns = 0);
  // Probes taken as lost since the last call (their loss is the search's, not the path's).
  unsigned take_lost() noexcept { return std::exchange(lost_, 0u); }

  // The kernel knows the path carries at most `max_datagram` (an ICMP message lowered
  // its path MTU): that bounds the result at once, whatever probes said (they may have
  // arrived in fragments the kernel made). True when the result changed.
  bool limit(std::size_t max_datagram, std::int64_t now_ns);

  bool searching() const noexcept { return state_ == State::Trying; }
  // The largest datagram known to arrive: `need` when the path carries the tunnel's
  // packets, less when a hop takes less; 0 while unknown.
  std::size_t result() const noexcept { return result_; }
  std::size_t need() const noexcept { return need_; }

 private:
  enum class State : std::uint8_t { Idle, Trying, Done };
  bool settle(std::int64_t now_ns);  // the next size, or the result
  State state_ = State::Idle;
  std::size_t need_ = 0;
  std::size_t good_ = 0, bad_ = 0;  // largest arrived, smallest lost (bad_ 0: none)
  std::size_t trying_ = 0;          // the size in flight
  unsigned sent_ = 0;               // probes of it sent
  unsigned rounds_ = 0;             // rounds of it that went unanswered
  unsigned lost_ = 0;
  std::int64_t last_tick_ns_ = 0;
  std::int64_t sent_ns_ = 0;        // when the last of them went
  std::int64_t done_ns_ = 0;
  std::size_t result_ = 0;
  std::size_t kernel_ = 0;  // the kernel's bound when below the need (limit), else 0
};

}  // namespace triglav::ctl
