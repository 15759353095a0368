// triglav benchmark: what the client measures and how it reports it, iperf3 style.
//
// The client runs a benchmark session (no TUN; docs/PROTOCOL.md, byte 3 of the
// initiation): its workers send synthetic UDP streams (upload) and/or the server's do
// (download); the receiver counts and drops them. Every interval the client samples its
// counters; BenchReport turns consecutive samples into rates and prints them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "control/status.h"

namespace triglav::ctl {

struct BenchOptions {
  bool enabled = false;
  double duration_s = 10;
  double interval_s = 1;
  unsigned streams = 1;  // 1-64, each sent by one worker (like iperf3 -P)
  bool upload = true;     // client -> server
  bool download = false;  // server -> client (--reverse: only this; --bidir: both)
  bool json = false;
};

// What the client had counted at one moment.
struct BenchSample {
  double t = 0;      // seconds since the benchmark started
  double cpu_s = 0;  // this process's CPU time (user + system)
  std::uint64_t sent = 0;       // Data bytes sent (all uplinks)
  std::uint64_t delivered = 0;  // of those, what the server reported received
  std::uint64_t received = 0;   // Data bytes received from the server
  std::uint64_t drops = 0;      // received packets dropped, every reason
  std::vector<UplinkStatus> uplinks;  // per uplink: state, RTT, loss, bytes
};

// This process's CPU seconds so far.
double process_cpu_seconds();

class BenchReport {
 public:
  // Lines go to `out` (none with json), a redrawn progress line to `progress` when
  // it is a terminal.
  BenchReport(const BenchOptions& opt, std::FILE* out, std::FILE* progress);

  void start(const BenchSample& s, const std::string& server);
  // The interval since the previous sample: one line (or one JSON record).
  void interval(const BenchSample& s);
  // Between intervals: the progress line (a terminal only).
  void progress(const BenchSample& s);
  // end: the sample at the end of the duration; drained: a moment later, when what was
  // in flight has arrived and the server's last counts are in. Prints the totals (and
  // with json the whole report).
  void finish(const BenchSample& end, const BenchSample& drained);

 private:
  std::string line(const BenchSample& a, const BenchSample& b) const;

  BenchOptions opt_;
  std::FILE* out_;
  std::FILE* progress_;
  bool tty_ = false;
  BenchSample first_, last_;
  std::string server_;
  std::vector<std::string> records_;  // json: the intervals, serialised
};

}  // namespace triglav::ctl
