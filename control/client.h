// `triglav tun`: brings up the TUN device, performs the handshake with the server
// named by the AuthKey, and carries traffic until SIGINT/SIGTERM.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/host/nat.h"
#include "control/prober.h"
#include "control/benchmark.h"
#include "control/runtime.h"
#include "control/status_server.h"
#include "crypto/authkey.h"
#include "crypto/client_key.h"
#include "dataplane/scheduler.h"
#include "io/endpoint.h"
#include "io/udp_socket.h"

namespace triglav::ctl {

struct ClientOptions {
  crypto::AuthKey key;
  std::vector<io::Endpoint> endpoints;  // from the AuthKey, or --endpoint
  TunSetup tun;                         // default tg0, 10.0.85.2/24
  int handshake_timeout_ms = 10'000;
  ProbeConfig probe;  // uplink probes, which are also the keepalives
  std::vector<std::string> interfaces;  // -i: one uplink per interface; none = one unbound uplink
  bool auto_discover = false;           // uplinks follow the interfaces that are up (usable_interfaces)
  std::vector<double> weights;          // per uplink, for weighted_round_robin
  dp::SchedulerConfig sched;
  int max_uplinks = 16;           // at most dp::kMaxUplinks
  int retry_delay_ms = 1000;      // between handshake attempts of an uplink
  int max_retries = 0;            // unanswered ones in a row before it backs off; 0: never
  bool tcp_fallback = false;      // an uplink whose UDP handshakes go unanswered tries TCP
  int tcp_fallback_after_ms = 3000;  // ... after this long
  std::optional<crypto::ClientKey> client_key;  // for servers that authorise clients (NKpsk2)
  std::int64_t rekey_after_ms = 120'000;   // a new handshake per uplink this often
  std::int64_t reject_after_ms = 180'000;  // a session not rekeyed by then is dropped
  io::SocketBuffers socket_buffers;  // per uplink socket
  bool tcp_nodelay = true;           // tcp_fallback connections: TCP_NODELAY
  int tcp_keepalive_s = 30;          // ... and their keepalive idle time
  bool aes256gcm = false;  // offer AES-256-GCM for transport (used when the server agrees)
  ReloadFn reload;                // SIGHUP; empty without a config file
  StatusServerConfig status;      // control socket and metrics
  BenchOptions bench;    // triglav benchmark (then tun.none: no TUN, synthetic traffic)
  std::string user;      // --user: run as this user after set-up (empty: stay root)
  std::string pid_file;  // --pid-file (removed on exit: checked against --user)
  std::vector<io::Ipv4Prefix> dns;  // --dns: resolver servers while running (1-3); 0: the server's tunnel address
  bool gateway = false;  // --gateway: masquerade what is forwarded into the TUN (a LAN behind us)
  bool gateway_nat = true;  // false: forward it unchanged (the server routes the LAN to us)
  NatSettings nat;       // [nat]: its timeouts and ports
  std::function<void(const std::string&)> on_ready;  // --daemon: the TUN is up
};

// Returns the exit code; throws std::runtime_error for start-up failures (after
// cleaning up what it set up), including a handshake that never completes.
int run_client(const ClientOptions& opt);
// triglav benchmark: opt.bench says what to measure; needs no root. Prints the report;
// returns the exit code, throws std::runtime_error for failures to start.
int run_benchmark(const ClientOptions& opt);

// The AuthKey's addresses as endpoints.
std::vector<io::Endpoint> authkey_endpoints(const crypto::AuthKey& key);

// The interfaces auto-discovery takes: up and running with an IPv4 address, not
// loopback, a tunnel (but PPP links), a TUN/TAP device (nor `tun`) or a bridge; of
// `only` (whatever their type) when not empty.
std::vector<std::string> usable_interfaces(const std::string& tun, const std::vector<std::string>& only);

}  // namespace triglav::ctl
