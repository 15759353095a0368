// triglav-simulate: the real scheduler, flow table, prober (PathStats + Health) and dedup
// window of both ends, driven by a simulated clock over the link models of a scenario
// file. No sockets, no crypto, no threads: one run of a 90 s scenario takes milliseconds,
// so strategies and defaults can be compared over many seeds.
//
// What is simulated: a client and a server joined by the scenario's links (each direction
// a linkem::Direction: rate, queue, delay, jitter, loss, bursts, duplication, outages);
// constant-rate flows in both directions (a real-time workload: each packet has a
// deadline); with strategy aggregate, each packet striped and the receiver's real reorder
// buffer putting the flows back in order; Ping/Pong probes of both ends sharing the links' queues with the data; the
// client's handshake again when its prober declares an uplink Down, and the server's
// session for that uplink replaced when the new initiation arrives. The control loops run
// every 20 ms and publish new views on a health change and at least every second, as the
// real ones do.
#pragma once

#include <cstdint>
#include <vector>

#include "control/prober.h"
#include "dataplane/scheduler.h"
#include "tools/linkem/scenario.h"

namespace triglav::sim {

struct SimConfig {
  dp::SchedulerConfig sched;
  ctl::ProbeConfig probe;
  unsigned flows = 4;                  // per direction
  double flow_pps = 50;                // packets per second of each flow
  std::size_t payload = 1200;          // inner packet bytes
  std::int64_t deadline_ns = 150'000'000;
  std::int64_t disruption_min_ns = 100'000'000;  // shorter runs of loss are not a failover
  std::int64_t duration_ns = 0;        // 0: the scenario's
  std::uint64_t seed = 1;
  std::vector<double> weights;         // weighted_round_robin, by uplink (default 1)
};

struct RunResult {
  std::uint64_t sent = 0;        // unique inner packets the applications sent
  std::uint64_t delivered = 0;   // unique inner packets that arrived (first copy)
  std::uint64_t on_time = 0;     // ... within the deadline
  std::uint64_t data_bytes = 0;  // inner bytes put on the links, every copy counted
  std::uint64_t delivered_bytes = 0;
  std::uint64_t probe_packets = 0;
  std::uint64_t handshakes = 0;  // completed by the client, the first ones included
  std::uint64_t out_of_order = 0;  // inner packets delivered after a later one of their flow
  // Each time a flow's packets stopped arriving for at least disruption_min_ns: from the
  // send time of the first lost packet to that of the next one that arrived.
  std::vector<double> disruptions_ms;

  void add(const RunResult& o);
};

// One run of `sc` (links in file order are uplinks 0, 1, ...). Deterministic for a seed.
RunResult run(const linkem::Scenario& sc, const SimConfig& cfg);

// The q-quantile (0..1) of v (sorted in place); 0 for an empty v.
double quantile(std::vector<double>& v, double q);

}  // namespace triglav::sim
