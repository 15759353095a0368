// `triglav status` and `triglav uplink list|show`: ask a running client or server over
// its control socket and print the answer as tables (or the JSON itself).
#pragma once

#include <string>

namespace triglav::ctl {

struct StatusQuery {
  std::string socket;      // empty: the only socket in /run/triglav
  bool json = false;
  bool detailed = false;   // RTT variance, handshakes, every counter
  bool watch = false;      // redraw every interval, like top
  double interval_s = 1;
  int count = 0;           // with watch: stop after this many redraws (0: until Ctrl-C)
  enum class What { Status, UplinkList, UplinkShow } what = What::Status;
  std::string uplink;      // UplinkShow: interface name or id
};

// Returns the exit code; throws std::runtime_error with a one-line reason.
int run_status(const StatusQuery& q);

// The AuthKey a running client uses, and the server address it was given instead of the
// key's (--endpoint; empty: none), asked over its control socket (`socket`, or the only
// client socket in /run/triglav). Throws std::runtime_error with a one-line reason.
struct RunningClient {
  std::string authkey, endpoint;
};
RunningClient running_client(const std::string& socket);

}  // namespace triglav::ctl
