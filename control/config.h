// Configuration: every setting of `triglav server` and `triglav tun` with its default,
// and the TOML files that carry them (`--config FILE`; `triglav config` writes a
// commented file with the defaults). The command line and the file fill the same
// Settings: the file first, then the flags given on the command line, so flags override
// the file. Which key and flag set each field, for which role, within which range, is
// the settings table (control/settings.h).
//
// A file is checked strictly: an unknown section or key, a value of the wrong type or
// out of range is an error naming the file, the line, the key and what is allowed; every
// such error is found, not only the first. check_settings then applies the rules that
// involve several settings or other files (control/config_check.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/wire.h"

namespace triglav::ctl {

enum class Role : std::uint8_t { Server, Client };

struct Settings {
  // [log]
  std::string log_level = "info";
  // [control]
  std::string control_socket;  // empty: /run/triglav/ROLE-TUN.sock; "none": no socket
  // [metrics]
  bool metrics = false;
  std::string metrics_listen = "127.0.0.1:9090";
  // [server]
  std::vector<std::string> listen{"0.0.0.0:" + std::to_string(dp::kDefaultPort)};
  std::string key_file;
  std::vector<std::string> addresses;  // advertised in the AuthKey (keygen, server)
  int max_connections = 1024;
  double idle_timeout_s = 180;
  bool nat_outbound = false;
  std::string authorized_clients;  // file or directory of client keys; empty: any client (NK)
  std::vector<std::string> client_routes;  // "NAME=PREFIX": networks routed to that client key
  // [client]
  std::string authkey;
  std::string endpoint;
  std::vector<std::string> interfaces;  // uplinks
  // Uplinks found and followed: on when asked (auto_discover = true, --auto-discover),
  // else when no uplinks are named unless turned off (auto_discover = false,
  // --no-auto-discover). `triglav benchmark` only when asked.
  bool auto_discover = false;
  bool no_auto_discover = false;
  double handshake_timeout_s = 10;
  std::string client_key_file;  // tgc1_ key for servers that authorise clients
  bool tcp_fallback = false;  // server: accept TCP too; client: fall back to it when UDP is blocked
  double tcp_fallback_after_s = 3;  // client: UDP unanswered this long on an uplink
  // [transport]
  double rekey_after_s = 120;   // client: a new handshake per uplink this often
  double reject_after_s = 180;  // a session this old (not rekeyed in time) is dropped
  double max_clock_skew_s = 120;  // server: initiations further from its clock are refused
  int socket_buffer = 8 << 20;  // bytes: each UDP socket's receive and send buffer
  int recv_buffer = 0, send_buffer = 0;  // bytes, one direction; 0: socket_buffer
  double tcp_connect_timeout_s = 10;  // server: a TCP connection the tunnel never answered
  bool tcp_nodelay = true;            // TCP fallback connections: TCP_NODELAY
  double tcp_keepalive_s = 30;        // TCP fallback connections: idle time before keepalives
  std::string cipher = "auto";  // transport cipher: auto, chacha20-poly1305, aes-256-gcm
  int workers = 0;  // dataplane workers, each pinned to a CPU; 0: one per CPU
  std::string user;  // [server]/[client] user: run as this user after set-up
  bool allow_benchmark = false;  // [server] allow_benchmark: accept triglav benchmark sessions
  std::string ipv6_prefix = "auto";  // [server] ipv6_prefix: auto, none, or an IPv6 /64
  // [tun]
  std::string tun_name = "tg0";
  std::string ipv4;  // "ADDR/LEN"; empty: the role's default
  int mtu = dp::kDefaultMtu;
  bool tun_offload = true;  // TSO/checksum offloads through virtio_net_hdrs
  std::vector<std::string> routes;
  // [routing] (client)
  bool full_tunnel = false;
  std::vector<std::string> exclude;
  std::vector<std::string> dns;
  bool gateway = false;  // masquerade what is forwarded into the TUN (a LAN behind us)
  bool gateway_nat = true;  // false: forward the LAN unchanged (the server's client_routes)
  // [nat] (the client's gateway mode, the server's nat_outbound)
  double nat_tcp_timeout_s = 7440;
  double nat_udp_timeout_s = 300;
  int nat_port_min = 32768, nat_port_max = 61000;
  // [multipath]
  int max_uplinks = 16;
  double retry_delay_s = 1;
  int max_retries = 0;  // client: handshakes at retry_delay before an uplink slows down; 0: never
  double probe_interval_s = 1;
  double busy_probe_interval_s = 0.25;
  // [multipath.scheduler]
  std::string strategy = "adaptive";
  std::vector<double> weights;  // weighted_round_robin, per uplink
  double rtt_weight = 0.35, loss_weight = 0.35, bandwidth_weight = 0.20, nat_weight = 0.10;
  int primary = 0;
  double hysteresis_s = 3;
  bool prefer_healthy = true;
};

// One mistake: "config PATH line N: ..." (line 0: of the file as a whole, or of the
// command line).
struct ConfigProblem {
  int line = 0;
  std::string message;
};

// Where the keys of a file stand, for messages about them: "section.key" -> line.
struct ConfigSource {
  std::string path;  // empty: no file
  bool parsed = false;  // the text was TOML (else the one problem says where it was not)
  std::map<std::string, int> lines;
};

// Reads a config file's text (or the file) into s, only the keys present changing it.
// Returns every mistake, in file order; `where` (may be null) learns the keys' lines.
std::vector<ConfigProblem> read_config(const std::string& text, const std::string& source, Role role, Settings& s,
                                       ConfigSource* where = nullptr);
std::vector<ConfigProblem> read_config_file(const std::string& path, Role role, Settings& s,
                                            ConfigSource* where = nullptr);

// The same, throwing std::runtime_error with the mistakes, one per line.
void load_config(const std::string& path, Role role, Settings& s);
void parse_config(const std::string& text, const std::string& source, Role role, Settings& s);

// The rules between settings, and (with kCheckFiles) the files they name: the key file,
// the client key and authorized_clients must read and decode (kKeyMayBeMade: a missing
// key file is made at start, --generate-key). Each problem names the key, with its line
// when `where` has it, else its flag; in file order, then the rest.
inline constexpr unsigned kCheckFiles = 1, kKeyMayBeMade = 2;
std::vector<ConfigProblem> check_settings(const Settings& s, Role role, const ConfigSource& where, unsigned how);

// The messages, one per line.
std::string joined(const std::vector<ConfigProblem>& problems);
// Sorted by line, those of no line (0) last, each group in the order found.
void in_file_order(std::vector<ConfigProblem>& problems);

// The tunnel address as "ADDR/LEN": ipv4_addr and ipv4_netmask (or --ipv4), else
// `default_addr` with the netmask given or 24.
std::string tunnel_address_text(const Settings& s, const char* default_addr);

// Which role a file is for, from its [server] or [client] section; nullopt: neither
// or both.
std::optional<Role> role_of_config(const std::string& path);

// A complete, commented config file for the role with the default values.
std::string default_config(Role role);

}  // namespace triglav::ctl
