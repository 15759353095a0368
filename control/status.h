// The operator's view of a running client or server: a Status the control thread fills
// on request, rendered as JSON (the control socket, `triglav status`) and as Prometheus
// text (the metrics endpoint). See docs/OPERATIONS.md, "Status and metrics".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/counters.h"

namespace triglav::ctl {

struct UplinkStatus {
  unsigned id = 0;
  std::string name;        // client: the interface ("default" when unbound); server: the peer
  std::string state;       // unknown, healthy, degraded, unhealthy, down
  bool connected = false;  // has a session
  double srtt_ms = -1;     // -1: no sample yet
  double rttvar_ms = 0;
  double loss = 0;         // 0..1 over the probe window
  double packet_loss = 0;  // 0..1, every packet counted (the peer's Pong counts; fades while idle)
  bool lossy = false;      // striping leaves it for its packet loss
  double throughput_bps = 0;
  std::uint64_t tx_bytes = 0;  // Data bytes sent on this uplink
  std::uint64_t delivered_bytes = 0;  // of those, what the peer reported received (in Pongs)
  std::uint64_t tx_packets = 0;  // Data packets sent on this uplink
  std::uint64_t tx_copies = 0;   // of those, redundant copies (the redundant strategy)
  std::uint64_t rx_bytes = 0;  // Data bytes received on this uplink

  std::uint64_t handshakes = 0;
  std::string peer;        // the other end's address
  bool behind_nat = false; // client: NAT between the uplink and the server
  std::string transport = "udp";  // client: "tcp" when the uplink fell back to TCP
  unsigned path_mtu = 0;  // client: the largest IP packet known to reach the server (0: not measured)
};

struct ClientStatus {  // one client of a server
  std::string address;  // tunnel address
  std::string id;       // client id, hex
  std::string key;      // the name of its client key (servers with authorized_clients)
  bool benchmark = false;  // a triglav benchmark session, not a tunnel
  std::vector<UplinkStatus> uplinks;
};

struct Status {
  std::string role;  // "client" or "server"
  std::string version;
  double uptime_s = 0;
  std::string tun;
  std::string address;  // tunnel address with prefix
  std::string strategy;
  std::string aead;     // the ChaCha20-Poly1305 implementation in use
  unsigned workers = 0;  // dataplane worker threads
  std::string state;    // client: "connected" or "connecting"; server: "serving"
  std::string authkey;  // client: the server's AuthKey it uses (the control socket is root's)
  std::string endpoint;  // client: the server address it was given (--endpoint); empty: the AuthKey's
  std::vector<UplinkStatus> uplinks;  // client
  std::vector<ClientStatus> clients;  // server
  dp::CounterTotals counters;
  std::uint64_t handshakes = 0;          // completed
  std::uint64_t handshake_rejects = 0;   // server: refused or invalid initiations
  std::uint64_t cookie_replies = 0;      // server: initiations answered with a cookie (under load)
  std::uint64_t handshakes_rate_limited = 0;  // server: dropped by the per-source limit
  bool nat = false;                // --gateway (client) or --nat-outbound (server) is on
  std::optional<std::uint64_t> nat_entries;  // connections it NATs now (empty: unreadable)
  std::optional<std::uint64_t> tcp_connections;  // server with tcp_fallback: open TCP connections
};

std::string to_json(const Status& s);
std::string to_prometheus(const Status& s);

// Health state name -> the number exported (0 unknown .. 4 down).
int health_value(const std::string& state);

}  // namespace triglav::ctl
