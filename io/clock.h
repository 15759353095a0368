// Clocks, in nanoseconds. monotonic_ns() is the precise one: RTT samples, emulation,
// each turn of a worker's loop (reorder waits and the striping model need better than
// the coarse clock's 4 ms tick) and the control thread's stamps of session activity,
// which it compares with the workers'. It is a vDSO read (tens of ns) with a TSC-like
// clocksource, a system call with others; either way once per loop turn, not per
// packet. realtime_ns() is wall-clock time for the handshake timestamps.
#pragma once

#include <time.h>

#include <cstdint>

namespace triglav::io {

inline std::int64_t clock_ns(clockid_t id) noexcept {
  timespec ts;
  clock_gettime(id, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
inline std::int64_t monotonic_ns() noexcept { return clock_ns(CLOCK_MONOTONIC); }
inline std::int64_t realtime_ns() noexcept { return clock_ns(CLOCK_REALTIME); }

}  // namespace triglav::io
