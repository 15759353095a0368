// Uplink views and schedulers as tests of the scheduler and the flow table build them.
#pragma once

#include <vector>

#include "dataplane/scheduler.h"

namespace triglav::dp::test {

inline UplinkView up(std::uint8_t id, HealthState s, double rtt, double loss = 0, double bw = 0, double weight = 1,
                     bool nat = false) {
  UplinkView u;
  u.id = id;
  u.state = s;
  u.srtt_ms = rtt;
  u.loss = loss;
  u.throughput_bps = bw;
  u.weight = weight;
  u.behind_nat = nat;
  return u;
}

inline Scheduler make(Strategy s, const std::vector<UplinkView>& v, std::int64_t now = 0) {
  SchedulerConfig c;
  c.strategy = s;
  Scheduler sch(c);
  sch.update(v, now);
  return sch;
}

}  // namespace triglav::dp::test
