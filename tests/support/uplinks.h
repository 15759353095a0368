// Uplink views and schedulers as tests of the scheduler and the flow table build them.
#pragma once

#include <vector>

#include "dataplane/scheduler.h"

namespace triglav::test {

inline dp::UplinkView up(std::uint8_t id, dp::HealthState s, double rtt, double loss = 0, double bw = 0,
                         double weight = 1, bool nat = false) {
  dp::UplinkView u;
  u.id = id;
  u.state = s;
  u.srtt_ms = rtt;
  u.loss = loss;
  u.throughput_bps = bw;
  u.weight = weight;
  u.behind_nat = nat;
  return u;
}

inline dp::Scheduler make(dp::Strategy s, const std::vector<dp::UplinkView>& v, std::int64_t now = 0) {
  dp::SchedulerConfig c;
  c.strategy = s;
  dp::Scheduler sch(c);
  sch.update(v, now);
  return sch;
}

}  // namespace triglav::test
