// `triglav diagnose`: checks what triglav needs from this machine (privileges, TUN,
// io_uring, UDP offloads, reverse-path filtering, MTUs, the clock) and, with
// --connectivity, whether the server answers through each uplink. One line per check:
// "ok", "warn" or "FAIL", and for each problem how to fix it.
#pragma once

#include <string>
#include <vector>

namespace triglav::ctl {

struct DiagnoseOptions {
  std::vector<std::string> interfaces;  // uplinks to check (default: every interface up with IPv4)
  int mtu = 1420;                       // the tunnel MTU the uplinks must carry
  bool full = false;                    // also forwarding, IPv6, the default control socket
  std::string authkey;                  // --connectivity: the server to try
  bool connectivity = false;
  // Without the AuthKey: a client config file's auth_key, else the running client's
  // (its control socket: this path, or the only client socket in /run/triglav).
  std::string config;
  std::string socket;
};

// Prints the report to stdout; returns 0 when nothing FAILed, else 1.
int run_diagnose(const DiagnoseOptions& o);

}  // namespace triglav::ctl
