// The link model of triglav-linkem: what one direction of an emulated link does to each
// packet (rate, queue, delay, jitter, reordering, random and bursty loss, duplication,
// outages), as a pure function of time, packet size and a seeded RNG. No I/O, no clock:
// the caller passes `now`, so tests drive it with synthetic time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

#include "io/units.h"

namespace triglav::linkem {

struct LinkParams {
  double rate_bps = 0;          // 0 = unlimited
  std::int64_t delay_ns = 0;    // one-way base delay
  std::int64_t jitter_ns = 0;   // standard deviation of a normal delay variation
  bool reorder = false;         // jitter may reorder packets (else delivery stays FIFO)
  double loss = 0;              // independent (Bernoulli) loss probability
  double ge_enter = 0;          // Gilbert-Elliott: P(good -> bad) per packet
  double ge_exit = 1;           // P(bad -> good) per packet; every packet in "bad" is lost
  double duplicate = 0;         // probability a packet is delivered twice
  bool down = false;            // outage: every packet is dropped
  std::size_t queue_bytes = 1 << 20;  // bottleneck queue; tail drop beyond it

  bool operator==(const LinkParams&) const = default;
};

enum class Fate : std::uint8_t { Deliver, DropLoss, DropBurst, DropOutage, DropQueue };

struct Verdict {
  Fate fate = Fate::Deliver;
  int copies = 0;                  // 1, or 2 when duplicated
  std::int64_t deliver_ns[2] = {};  // when each copy leaves the link
  std::int64_t queued_ns = 0;      // time spent waiting for the bottleneck
};

struct DirectionStats {
  std::uint64_t packets = 0, bytes = 0, delivered = 0, duplicated = 0;
  std::uint64_t drop_loss = 0, drop_burst = 0, drop_outage = 0, drop_queue = 0;
  std::int64_t max_queued_ns = 0;
};

class Direction {
 public:
  explicit Direction(std::uint64_t seed) : rng_(seed) {}

  void set_params(const LinkParams& p) noexcept { p_ = p; }
  const LinkParams& params() const noexcept { return p_; }

  // Decides the fate of a packet of `bytes` arriving at `now_ns`.
  Verdict on_packet(std::int64_t now_ns, std::size_t bytes);

  // Bytes waiting for the bottleneck at now_ns.
  std::size_t backlog_bytes(std::int64_t now_ns) const noexcept;
  const DirectionStats& stats() const noexcept { return stats_; }

 private:
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }
  std::int64_t jitter();

  LinkParams p_;
  std::mt19937_64 rng_;
  std::int64_t busy_until_ns_ = 0;    // the bottleneck is serialising until then
  std::int64_t last_deliver_ns_ = 0;  // for FIFO delivery without reordering
  bool ge_bad_ = false;
  DirectionStats stats_;
};

// Parsers for scenario values (shared with the config files).
using io::parse_duration;
using io::parse_percent;
using io::parse_rate;
using io::parse_size;

}  // namespace triglav::linkem
