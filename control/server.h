// `triglav server`: answers handshakes, owns one session per client uplink, routes
// TUN packets to clients by their tunnel address.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "control/host/nat.h"
#include "control/prober.h"
#include "control/runtime.h"
#include "control/status_server.h"
#include "dataplane/scheduler.h"
#include "io/endpoint.h"
#include "io/udp_socket.h"

namespace triglav::ctl {

struct ServerOptions {
  std::string key_file;        // load (or, with generate_key and missing, create)
  bool generate_key = false;   // a new key; saved to key_file if one is given
  bool print_key = false;      // print the AuthKey and return, serving nothing (needs key_file)
  std::vector<io::Endpoint> listen;  // one UDP socket each; default 0.0.0.0:7443
  std::vector<io::Endpoint> advertise;  // AuthKey addresses; default: derived
  TunSetup tun;                // default tg0, 10.0.85.1/24
  int idle_timeout_s = 180;
  int max_connections = 1024;  // clients at once
  bool nat_outbound = false;   // forward and masquerade the clients' traffic
  bool allow_benchmark = false;  // accept `triglav benchmark` sessions (no TUN traffic, synthetic load)
  // The tunnel's IPv6 /64: "auto" (a ULA derived from the server key, so it stays with
  // the key), "none" (IPv4 only) or a prefix such as "fd12:3456:789a:1::/64".
  std::string ipv6_prefix = "auto";
  bool tcp_fallback = false;   // also accept clients over TCP, beside each listening address
  NatSettings nat;             // [nat]: its timeouts and ports
  std::string authorized_clients;  // client keys allowed (file or directory); empty: any client
  // Networks behind clients, by client key name: routed into the TUN and to that client,
  // which may send from them (gateways that do not NAT their LAN).
  std::vector<std::pair<std::string, io::Ipv4Prefix>> client_routes;
  int reject_after_s = 180;    // a session not rekeyed for this long is dropped
  // Initiations whose timestamp is further than this from the server's clock are
  // refused: a captured one goes stale, even across restarts.
  int max_clock_skew_s = 120;
  io::SocketBuffers socket_buffers;  // per UDP socket
  bool tcp_nodelay = true;           // tcp_fallback connections: TCP_NODELAY
  int tcp_keepalive_s = 30;          // ... and their keepalive idle time
  int tcp_connect_timeout_s = 10;    // ... closed when the tunnel has not answered by then
  bool aes256gcm = false;      // agree to AES-256-GCM with clients that offer it
  dp::SchedulerConfig sched;   // how return traffic spreads over a client's uplinks
  ProbeConfig probe;           // the server probes each client uplink too
  ReloadFn reload;             // SIGHUP; empty without a config file
  StatusServerConfig status;   // control socket and metrics
  std::string user;      // --user: run as this user after set-up (empty: stay root)
  std::string pid_file;  // --pid-file (removed on exit: checked against --user)
  std::function<void(const std::string&)> on_ready;  // --daemon: serving; gets the AuthKey line
};

// Runs until SIGINT/SIGTERM. Returns the process exit code; throws std::runtime_error
// for start-up failures (after cleaning up what it set up).
int run_server(const ServerOptions& opt);

}  // namespace triglav::ctl
