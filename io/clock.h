// Clocks, in nanoseconds. coarse_ns() is the cheap tick-resolution clock (4 ms at
// HZ=250) the control thread stamps and compares session activity with; monotonic_ns()
// is the precise one (a vDSO read, tens of ns) for RTT samples, emulation and each turn
// of a worker's loop, whose reorder waits and striping model need better than a tick;
// realtime_ns() is wall-clock time for the handshake timestamps. Both monotonic clocks
// count from the same origin, so their stamps compare (within a tick).
#pragma once

#include <time.h>

#include <cstdint>

namespace triglav::io {

inline std::int64_t clock_ns(clockid_t id) noexcept {
  timespec ts;
  clock_gettime(id, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
inline std::int64_t coarse_ns() noexcept { return clock_ns(CLOCK_MONOTONIC_COARSE); }
inline std::int64_t monotonic_ns() noexcept { return clock_ns(CLOCK_MONOTONIC); }
inline std::int64_t realtime_ns() noexcept { return clock_ns(CLOCK_REALTIME); }

}  // namespace triglav::io
