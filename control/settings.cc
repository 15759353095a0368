// The settings table (see settings.h): one row per setting, in the order of the
// generated config file. Rows whose help or file comment differ by role appear once per
// role.
#include "control/settings.h"

#include <cstdio>

#include "dataplane/scheduler.h"
#include "dataplane/wire.h"
#include "io/endpoint.h"

namespace triglav::ctl {
namespace {

constexpr std::uint8_t kBoth = kOnServer | kOnClient;

bool check_endpoint(const std::string& v, std::string& why) {
  std::string err;
  if (io::parse_endpoint(v, err)) return true;
  why = "IP:PORT addresses ('" + v + "': " + err + ")";
  return false;
}

bool check_endpoint_or_empty(const std::string& v, std::string& why) {
  return v.empty() || check_endpoint(v, why);
}

bool check_prefix(const std::string& v, std::string& why) {
  std::string err;
  if (v.find(':') != std::string::npos ? io::parse_ipv6_prefix(v, err).has_value()
                                       : io::parse_ipv4_prefix(v, 32, err).has_value())
    return true;
  why = "prefixes such as \"192.168.0.0/16\" or \"fd12:3456::/48\" ('" + v + "': " + err + ")";
  return false;
}

bool is_interface_name(const std::string& v) {
  return !v.empty() && v.size() < 16 && v.find('/') == std::string::npos;
}

bool check_interfaces(const std::string& v, std::string& why) {
  if (is_interface_name(v)) return true;
  why = "interface names of 1-15 characters";
  return false;
}

bool check_interface(const std::string& v, std::string& why) {
  if (is_interface_name(v)) return true;
  why = "an interface name of 1-15 characters";
  return false;
}

bool check_ipv4(const std::string& v, std::string& why) {
  std::string err;
  if (v.find('/') == std::string::npos && io::parse_ipv4_prefix(v, 32, err)) return true;
  why = "IPv4 addresses such as \"10.0.85.1\"";
  return false;
}

bool check_dns(const std::string& v, std::string& why) {
  if (v == "server" || check_ipv4(v, why)) return true;
  why = "IPv4 addresses such as \"10.0.85.1\", or \"server\" (the server's tunnel address)";
  return false;
}

bool check_client_route(const std::string& v, std::string& why) {
  const auto eq = v.find('=');
  std::string err;
  if (eq != std::string::npos && eq > 0 && io::parse_ipv4_prefix(v.substr(eq + 1), 32, err)) return true;
  why = "\"NAME=PREFIX\" strings, such as \"office=192.168.50.0/24\" ('" + v + "')";
  return false;
}

// [tun] ipv4_addr: the address; ipv4_netmask keeps the prefix length in Settings::ipv4
// ("ADDR/LEN"), so that either key may come first. Empty (client): the server assigns one.
bool apply_ipv4_addr(const std::string& v, Settings& s) {
  const auto slash = s.ipv4.find('/');
  const std::string len = slash == std::string::npos ? "" : s.ipv4.substr(slash);
  if (v.empty()) return s.ipv4 = len, true;
  std::string err;
  if (v.find('/') != std::string::npos || !io::parse_ipv4_prefix(v, 32, err)) return false;
  s.ipv4 = v + len;
  return true;
}

// [tun] ipv4_netmask: a prefix length, or a dotted mask of contiguous ones.
bool apply_ipv4_netmask(const std::string& v, Settings& s) {
  int len = -1;
  unsigned n = 0;
  int used = 0;
  if (std::sscanf(v.c_str(), "%2u%n", &n, &used) == 1 && static_cast<std::size_t>(used) == v.size()) {
    if (n >= 1 && n <= 32) len = static_cast<int>(n);
  } else {
    std::string err;
    if (auto p = io::parse_ipv4_prefix(v, 32, err); p && v.find('/') == std::string::npos) {
      const std::uint32_t m = __builtin_bswap32(p->addr_be);
      const int ones = __builtin_popcount(m);
      if (ones > 0 && m == (~std::uint32_t{0} << (32 - ones))) len = ones;
    }
  }
  if (len < 0) return false;
  const auto slash = s.ipv4.find('/');
  s.ipv4 = (slash == std::string::npos ? s.ipv4 : s.ipv4.substr(0, slash)) + "/" + std::to_string(len);
  return true;
}

// [nat] port_range: "LOW-HIGH", both within 1024-65535 and LOW <= HIGH.
bool apply_port_range(const std::string& v, Settings& s) {
  unsigned a = 0, b = 0;
  int used = 0;
  if (std::sscanf(v.c_str(), "%5u-%5u%n", &a, &b, &used) != 2 || static_cast<std::size_t>(used) != v.size())
    return false;
  if (a < 1024 || b > 65535 || a > b) return false;
  s.nat_port_min = static_cast<int>(a);
  s.nat_port_max = static_cast<int>(b);
  return true;
}

// [transport] recv_buffer_size / send_buffer_size: bytes, or 0 for socket_buffer's.
bool buffer_size(const std::string& v, int& out) {
  unsigned long n = 0;
  int used = 0;
  if (std::sscanf(v.c_str(), "%10lu%n", &n, &used) != 1 || static_cast<std::size_t>(used) != v.size()) return false;
  if (n != 0 && (n < 65536 || n > (1UL << 30))) return false;
  out = static_cast<int>(n);
  return true;
}
bool apply_recv_buffer(const std::string& v, Settings& s) { return buffer_size(v, s.recv_buffer); }
bool apply_send_buffer(const std::string& v, Settings& s) { return buffer_size(v, s.send_buffer); }
constexpr const char* kBufferExpect = "a size in bytes from 65536 to 1073741824, or 0 (socket_buffer's)";

// [client] auto_discover: true or false, each said explicitly (left out, it depends on
// whether uplinks are named).
bool apply_auto_discover(const std::string& v, Settings& s) {
  if (v != "true" && v != "false") return false;
  s.auto_discover = v == "true";
  s.no_auto_discover = v == "false";
  return true;
}

constexpr const char* kStrategies =
    "adaptive, lowest_latency, lowest_loss, weighted_round_robin, bandwidth_proportional, redundant, "
    "primary_backup, ecmp_aware, aggregate";
// The short names the first README used ("--strategy latency").
constexpr const char* kStrategyAliases =
    "latency=lowest_latency, loss=lowest_loss, round_robin=weighted_round_robin, "
    "bandwidth=bandwidth_proportional, backup=primary_backup, ecmp=ecmp_aware";
constexpr const char* kCiphers = "auto, chacha20-poly1305, aes-256-gcm";
constexpr const char* kLevels = "trace, debug, info, warn, error, off";

using S = Settings;
using K = Kind;

const Setting kSettings[] = {
    // [log]
    {.section = "log", .key = "level", .flag = "--log-level", .file = kBoth, .cli = kOnMain, .kind = K::Text,
     .text = &S::log_level, .choices = kLevels, .help = "how much to log"},
    // [control]
    {.section = "control", .key = "socket", .flag = "--control-socket", .file = kBoth, .cli = kBoth,
     .kind = K::Text, .text = &S::control_socket,
     .help = "unix socket for `triglav status` (default /run/triglav/ROLE-TUN.sock; 'none': no socket)",
     .doc = "Unix socket for `triglav status` (root only); empty: /run/triglav/ROLE-TUN.sock, ROLE "
            "server or client; \"none\": no socket."},
    // [metrics]
    {.section = "metrics", .key = "enabled", .file = kBoth, .kind = K::Bool, .boolean = &S::metrics,
     .doc = "Serve Prometheus metrics (text format) at http://LISTEN/metrics."},
    {.section = "metrics", .key = "listen", .flag = "--metrics-listen", .file = kBoth, .cli = kBoth,
     .kind = K::Text, .text = &S::metrics_listen, .check = check_endpoint, .implies = &S::metrics,
     .help = "serve Prometheus metrics at http://IP:PORT/metrics (e.g. 127.0.0.1:9090)", .doc = ""},
    // [server]
    {.section = "server", .key = "listen", .flag = "--listen", .file = kOnServer, .cli = kOnServer,
     .kind = K::Texts, .texts = &S::listen, .check = check_endpoint,
     .help = "UDP address to listen on (repeatable)", .doc = "UDP addresses to listen on (IPv4 or [IPv6]:port)."},
    {.section = "server", .key = "key_file", .flag = "--key", .file = kOnServer, .cli = kOnServer,
     .kind = K::Text, .text = &S::key_file,
     .show = [](const Settings&) { return std::string("\"/etc/triglav/server.key\""); },
     .help = "key file (from `triglav keygen`)", .doc = "Key file from `triglav keygen`; required."},
    {.section = "server", .key = "addresses", .flag = "--address", .file = kOnServer, .cli = kOnServer,
     .kind = K::Texts, .texts = &S::addresses, .check = check_endpoint,
     .help = "IP:PORT for the AuthKey (repeatable)",
     .doc = "Addresses clients are told to use (in the AuthKey); empty: the key file's, else the listen "
            "addresses (every local address for a wildcard)."},
    {.section = "server", .key = "max_connections", .flag = "--max-connections", .file = kOnServer,
     .cli = kOnServer, .kind = K::Int, .integer = &S::max_connections, .lo = 1, .hi = 1'000'000,
     .help = "clients served at once",
     .doc = "Clients served at once; handshakes of further clients are refused."},
    {.section = "server", .key = "idle_timeout", .flag = "--idle-timeout", .file = kOnServer, .cli = kOnServer,
     .kind = K::Duration, .number = &S::idle_timeout_s, .lo = 1, .hi = 86'400,
     .help = "how long an idle session lives before it is dropped",
     .doc = "A client uplink that sends nothing for this long is removed."},
    {.section = "server", .key = "nat_outbound", .flag = "--nat-outbound", .file = kOnServer, .cli = kOnServer,
     .kind = K::Bool, .boolean = &S::nat_outbound,
     .help = "forward the clients' traffic and masquerade it on the other interfaces (nftables)",
     .doc = "Forward the clients' traffic and masquerade it on the other interfaces, so they reach the "
            "server's networks and the internet, over IPv4 and IPv6 (nftables; undone on exit)."},
    {.section = "server", .key = "authorized_clients", .flag = "--authorized-clients", .file = kOnServer,
     .cli = kOnServer, .kind = K::Text, .text = &S::authorized_clients,
     .help = "only clients whose key is in this file (or directory of files) may connect; changes apply "
             "within a second",
     .doc = "Client keys allowed to connect: a file of \"tgc1_... name\" lines, or a directory of such "
            "files (one per client; delete a file to revoke its key within seconds). Empty: any client "
            "holding the AuthKey may connect."},
    {.section = "server", .key = "client_routes", .flag = "--client-route", .file = kOnServer,
     .cli = kOnServer, .kind = K::Texts, .texts = &S::client_routes, .check = check_client_route,
     .help = "NAME=PREFIX: a network behind the client with key NAME, routed to it (repeatable)",
     .doc = "Networks behind a client (a gateway that does not NAT its LAN): \"NAME=PREFIX\", NAME a key "
            "of authorized_clients. Routed to that client, which may send from them."},
    {.section = "server", .key = "user", .flag = "--user", .file = kOnServer, .cli = kOnServer,
     .kind = K::Text, .text = &S::user,
     .help = "after set-up, run as this user with only CAP_NET_ADMIN and CAP_NET_RAW (e.g. nobody)",
     .doc = "After set-up, run as this user with only CAP_NET_ADMIN and CAP_NET_RAW; empty: stay root. "
            "authorized_clients must be readable by it."},
    {.section = "server", .key = "allow_benchmark", .flag = "--allow-benchmark", .file = kOnServer,
     .cli = kOnServer, .kind = K::Bool, .boolean = &S::allow_benchmark,
     .help = "accept `triglav benchmark` sessions: synthetic traffic, counted and dropped, never on the TUN",
     .doc = "Accept `triglav benchmark` sessions: synthetic traffic, counted and dropped here, never on "
            "the TUN (and sent back for --reverse/--bidir)."},
    {.section = "server", .key = "ipv6_prefix", .flag = "--ipv6-prefix", .file = kOnServer, .cli = kOnServer,
     .kind = K::Text, .text = &S::ipv6_prefix,
     .help = "the tunnel's IPv6 /64: auto (a unique local prefix from the key), none, or e.g. "
             "fd12:3456:789a:1::/64; clients get prefix::A.B.C.D",
     .doc = "The tunnel's IPv6 /64: \"auto\" (a unique local prefix derived from the key), \"none\" (IPv4 "
            "only) or e.g. \"fd12:3456:789a:1::/64\". Clients get prefix::A.B.C.D for their IPv4 tunnel "
            "address A.B.C.D; the server is prefix::1."},
    {.section = "server", .key = "tcp_fallback", .flag = "--tcp-fallback", .file = kOnServer, .cli = kOnServer,
     .kind = K::Bool, .boolean = &S::tcp_fallback,
     .help = "also accept clients over TCP on each --listen port, for networks that block UDP",
     .doc = "Also accept clients over TCP, on each listen address's port, for networks that block UDP "
            "(the clients' tcp_fallback)."},
    // [client]
    {.section = "client", .key = "auth_key", .file = kOnClient, .kind = K::Text, .text = &S::authkey,
     .doc = "The server's AuthKey (tg1_...), as printed by `triglav keygen` or the server; on the "
            "command line, the argument of `triglav tun`."},
    {.section = "client", .key = "endpoint", .flag = "--endpoint", .file = kOnClient, .cli = kOnClient | kOnBench,
     .kind = K::Text, .text = &S::endpoint, .check = check_endpoint_or_empty,
     .help = "server IP:PORT, instead of the AuthKey's addresses",
     .doc = "Server IP:PORT, instead of the AuthKey's addresses; empty: the AuthKey's."},
    {.section = "client", .key = "uplinks", .flag = "-i,--interface", .file = kOnClient,
     .cli = kOnClient | kOnBench, .kind = K::Texts, .texts = &S::interfaces, .check = check_interfaces,
     .help = "uplink interface (repeatable; default: every usable interface, auto-discovered; binding one "
             "needs CAP_NET_RAW)",
     .doc = "Uplink interfaces, e.g. [\"eth1\", \"wwan0\"]; empty: every usable interface (auto_discover), or "
            "with auto_discover = false one uplink chosen by the routing table."},
    {.flag = "--auto-discover", .cli = kOnClient | kOnBench, .kind = K::Bool, .boolean = &S::auto_discover,
     .help = "use every interface that is up with an IPv4 address as an uplink, and follow them (the default "
             "of tun without -i; with -i: only those names, followed as they come and go)"},
    {.flag = "--no-auto-discover", .cli = kOnClient, .kind = K::Bool, .boolean = &S::no_auto_discover,
     .help = "without -i: one uplink, the one the routing table chooses, instead of every usable interface"},
    {.section = "client", .key = "auto_discover", .file = kOnClient, .kind = K::Custom, .apply = apply_auto_discover,
     .expect = "true or false", .show = [](const Settings&) { return std::string("true"); },
     .doc = "Use every interface that is up with an IPv4 address (or a PPP link), and follow them as they come "
            "and go; with uplinks, only the interfaces it names. false: the uplinks named, or without any, one "
            "uplink the routing table chooses. Left out: on without uplinks."},
    {.section = "client", .key = "handshake_timeout", .flag = "--handshake-timeout", .file = kOnClient,
     .cli = kOnClient | kOnBench, .kind = K::Duration, .number = &S::handshake_timeout_s, .lo = 0.1, .hi = 3600,
     .help = "how long to wait for the server",
     .doc = "Give up when the first handshake has not completed after this long."},
    {.section = "client", .key = "client_key_file", .flag = "--client-key", .file = kOnClient,
     .cli = kOnClient | kOnBench, .kind = K::Text, .text = &S::client_key_file,
     .help = "this client's key file (`triglav keygen --client`)",
     .doc = "This client's key (`triglav keygen --client`), for servers with authorized_clients."},
    {.section = "client", .key = "tcp_fallback", .flag = "--tcp-fallback", .file = kOnClient, .cli = kOnClient,
     .kind = K::Bool, .boolean = &S::tcp_fallback,
     .help = "an uplink whose UDP handshakes go unanswered tries TCP to the server's port (its --tcp-fallback)",
     .doc = "An uplink whose UDP handshakes go unanswered for tcp_fallback_after tries TCP to the server's "
            "port instead (the server needs tcp_fallback too)."},
    {.section = "client", .key = "tcp_fallback_after", .flag = "--tcp-fallback-after", .file = kOnClient,
     .cli = kOnClient, .kind = K::Duration, .number = &S::tcp_fallback_after_s, .lo = 0.1, .hi = 600,
     .help = "how long UDP goes unanswered before an uplink tries TCP", .doc = ""},
    {.section = "client", .key = "user", .flag = "--user", .file = kOnClient, .cli = kOnClient,
     .kind = K::Text, .text = &S::user,
     .help = "after set-up, run as this user with only CAP_NET_ADMIN and CAP_NET_RAW (e.g. nobody)",
     .doc = "After set-up, run as this user with only CAP_NET_ADMIN and CAP_NET_RAW; empty: stay root."},
    // [transport]
    {.section = "transport", .key = "rekey_after", .flag = "--rekey-after", .file = kOnClient, .cli = kOnClient,
     .kind = K::Duration, .number = &S::rekey_after_s, .lo = 1, .hi = 3600,
     .help = "how often each uplink handshakes again",
     .doc = "Every uplink handshakes again this often; the old keys keep decrypting a few seconds "
            "longer, so nothing in flight is lost."},
    {.section = "transport", .key = "reject_after", .flag = "--reject-after", .file = kOnServer,
     .cli = kOnServer, .kind = K::Duration, .number = &S::reject_after_s, .lo = 2, .hi = 7200,
     .help = "the age at which a session not rekeyed is dropped",
     .doc = "A session not rekeyed for this long is dropped (clients rekey every 2 minutes)."},
    {.section = "transport", .key = "reject_after", .flag = "--reject-after", .file = kOnClient,
     .cli = kOnClient, .kind = K::Duration, .number = &S::reject_after_s, .lo = 2, .hi = 7200,
     .help = "the age at which a session that could not rekey is dropped",
     .doc = "A session that could not rekey for this long is dropped and handshaken anew."},
    {.section = "transport", .key = "max_clock_skew", .flag = "--max-clock-skew", .file = kOnServer,
     .cli = kOnServer, .kind = K::Duration, .number = &S::max_clock_skew_s, .lo = 1, .hi = 86'400,
     .help = "how far a client's clock may be from ours; older or newer initiations are refused",
     .doc = "A client's initiation whose timestamp is further than this from the server's clock is "
            "refused: a captured one is useless once it is this old (keep clocks in sync)."},
    {.section = "transport", .key = "socket_buffer", .flag = "--socket-buffer", .file = kBoth, .cli = kBoth,
     .kind = K::Int, .integer = &S::socket_buffer, .lo = 65536, .hi = 1 << 30,
     .help = "bytes of receive and send buffer of each UDP socket",
     .doc = "Receive and send buffer of each UDP socket, in bytes (bursts wait here)."},
    {.section = "transport", .key = "recv_buffer_size", .file = kBoth, .kind = K::Custom, .apply = apply_recv_buffer,
     .expect = kBufferExpect, .show = [](const Settings&) { return std::string("0"); },
     .doc = "The receive buffer alone, in bytes; 0: socket_buffer."},
    {.section = "transport", .key = "send_buffer_size", .file = kBoth, .kind = K::Custom, .apply = apply_send_buffer,
     .expect = kBufferExpect, .show = [](const Settings&) { return std::string("0"); },
     .doc = "The send buffer alone, in bytes; 0: socket_buffer."},
    {.section = "transport", .key = "connect_timeout", .file = kOnServer, .kind = K::Duration,
     .number = &S::tcp_connect_timeout_s, .lo = 1, .hi = 600,
     .doc = "tcp_fallback: a TCP connection the tunnel has not answered within this long (no valid "
            "handshake) is closed."},
    {.section = "transport", .key = "connect_timeout", .file = kOnClient, .kind = K::Duration,
     .number = &S::handshake_timeout_s, .lo = 0.1, .hi = 3600, .doc = "",
     .same_as = "client.handshake_timeout"},
    {.section = "transport", .key = "tcp_nodelay", .file = kBoth, .kind = K::Bool, .boolean = &S::tcp_nodelay,
     .doc = "tcp_fallback connections: send each datagram at once (TCP_NODELAY); false lets the kernel "
            "gather small ones."},
    {.section = "transport", .key = "tcp_keepalive", .file = kBoth, .kind = K::Duration,
     .number = &S::tcp_keepalive_s, .lo = 1, .hi = 7200,
     .doc = "tcp_fallback connections: TCP keepalives after this long without traffic, then every third "
            "of it; three unanswered close the connection (the tunnel's probes usually keep it busy)."},
    {.section = "transport", .key = "workers", .flag = "--workers", .file = kBoth, .cli = kBoth | kOnBench,
     .kind = K::Int, .integer = &S::workers, .lo = 0, .hi = dp::kMaxWorkers,
     .help = "dataplane worker threads, each with its own TUN queue and sockets, pinned to a CPU (0: one per CPU)",
     .doc = "Dataplane worker threads, each with its own TUN queue and sockets, pinned to a CPU; 0: one "
            "per CPU this process may use."},
    {.section = "transport", .key = "cipher", .flag = "--cipher", .file = kBoth, .cli = kBoth | kOnBench,
     .kind = K::Text, .text = &S::cipher, .choices = kCiphers,
     .help = "transport cipher this end takes: auto (AES-256-GCM when the CPU has AES-NI and it is faster "
             "here, else ChaCha20-Poly1305), chacha20-poly1305, or aes-256-gcm (whenever the peer agrees)",
     .doc = "Transport cipher this end takes: auto (AES-256-GCM when the CPU has AES-NI and it is faster "
            "here, else ChaCha20-Poly1305) or always the one named. A session uses AES-256-GCM when the "
            "client offers it and the server agrees."},
    // [tun]
    {.section = "tun", .key = "name", .flag = "--tun-name", .file = kBoth, .cli = kBoth, .kind = K::Text,
     .text = &S::tun_name, .check = check_interface, .help = "TUN interface name",
     .doc = "The TUN interface's name."},
    {.flag = "--ipv4", .cli = kOnServer, .kind = K::Text, .text = &S::ipv4,
     .help = "tunnel address with prefix length (default 10.0.85.1/24)"},
    {.flag = "--ipv4", .cli = kOnClient, .kind = K::Text, .text = &S::ipv4,
     .help = "tunnel address with prefix length (default: assigned by the server from its tunnel prefix)"},
    {.section = "tun", .key = "ipv4_addr", .file = kOnServer, .kind = K::Custom, .apply = apply_ipv4_addr,
     .expect = "an IPv4 address such as \"10.0.85.2\" (the prefix length is ipv4_netmask)",
     .show = [](const Settings&) { return std::string("\"10.0.85.1\""); },
     .doc = "The tunnel address and its prefix length (or a mask such as \"255.255.255.0\"); clients that "
            "ask get the other addresses of the prefix."},
    {.section = "tun", .key = "ipv4_addr", .file = kOnClient, .kind = K::Custom, .apply = apply_ipv4_addr,
     .expect = "an IPv4 address such as \"10.0.85.2\" (the prefix length is ipv4_netmask)",
     .show = [](const Settings&) { return std::string("\"\""); },
     .doc = "The tunnel address and its prefix length; empty: the server assigns one."},
    {.section = "tun", .key = "ipv4_netmask", .file = kBoth, .kind = K::Custom, .apply = apply_ipv4_netmask,
     .expect = "a prefix length 1-32 or a mask such as \"255.255.255.0\"",
     .show = [](const Settings&) { return std::string("24"); }, .doc = ""},
    {.section = "tun", .key = "mtu", .flag = "--mtu", .file = kBoth, .cli = kBoth, .kind = K::Int,
     .integer = &S::mtu, .lo = dp::kMinMtu, .hi = dp::kMaxMtu, .help = "TUN MTU",
     .doc = "The TUN interface's MTU: the largest inner packet."},
    {.flag = "--mtu", .cli = kOnBench, .kind = K::Int, .integer = &S::mtu, .lo = dp::kMinMtu, .hi = dp::kMaxMtu,
     .help = "inner packet size of the streams"},
    {.section = "tun", .key = "offload", .flag = "!--no-tun-offload", .file = kBoth, .cli = kBoth,
     .kind = K::Bool, .boolean = &S::tun_offload,
     .help = "plain TUN packets: no TCP super-packets to segment here (virtio_net_hdr offloads off)",
     .doc = "Let the kernel hand over TCP in super-packets of up to 64 KB, segmented here (virtio_net_hdr "
            "offloads): far fewer TUN reads. false: one packet per read."},
    {.section = "tun", .key = "routes", .flag = "--route", .file = kOnServer, .cli = kOnServer, .kind = K::Texts,
     .texts = &S::routes, .check = check_prefix, .help = "extra prefix to route into the tunnel (repeatable)",
     .doc = "Prefixes routed into the tunnel (networks of the clients)."},
    {.section = "tun", .key = "routes", .flag = "--route", .file = kOnClient, .cli = kOnClient, .kind = K::Texts,
     .texts = &S::routes, .check = check_prefix, .help = "extra prefix to route through the tunnel (repeatable)",
     .doc = "Prefixes routed through the tunnel (networks behind the server)."},
    // [routing]
    {.section = "routing", .key = "full_tunnel", .flag = "--full-tunnel", .file = kOnClient, .cli = kOnClient,
     .kind = K::Bool, .boolean = &S::full_tunnel,
     .help = "send all traffic through the tunnel (policy routing), except the uplinks' own and --exclude",
     .doc = "Send all traffic through the tunnel (policy routing; the main table is left alone), except "
            "the uplinks' own packets and exclude_routes."},
    {.section = "routing", .key = "exclude_routes", .flag = "--exclude", .file = kOnClient, .cli = kOnClient,
     .kind = K::Texts, .texts = &S::exclude, .check = check_prefix,
     .help = "with --full-tunnel: a prefix that bypasses the tunnel, e.g. the LAN (repeatable)",
     .doc = "Prefixes that bypass the tunnel in full_tunnel mode, e.g. the local LAN."},
    {.section = "routing", .key = "dns_servers", .flag = "--dns", .file = kOnClient, .cli = kOnClient,
     .kind = K::Texts, .texts = &S::dns, .check = check_dns,
     .help = "DNS server to use through the tunnel while connected (repeatable, up to 3; without a value, or "
             "'server': the server's tunnel address, the tunnel's own resolver); /etc/resolv.conf is restored "
             "on exit",
     .doc = "DNS servers (1-3) to use through the tunnel while it runs; \"server\": the server's tunnel "
            "address (a resolver there). /etc/resolv.conf is restored on exit. Empty: the resolver is left "
            "alone.",
     .bare = "server"},
    {.section = "routing", .key = "gateway", .flag = "--gateway", .file = kOnClient, .cli = kOnClient,
     .kind = K::Bool, .boolean = &S::gateway,
     .help = "bond a LAN behind this host: forward its traffic into the tunnel, masqueraded to the tunnel "
             "address",
     .doc = "Gateway: forward a LAN's traffic into the tunnel, masqueraded to the tunnel address "
            "(nftables; IP forwarding on while running). With full_tunnel, put the LAN in exclude_routes "
            "so that its answers stay on the LAN."},
    {.section = "routing", .key = "gateway_nat", .flag = "!--no-gateway-nat", .file = kOnClient,
     .cli = kOnClient, .kind = K::Bool, .boolean = &S::gateway_nat,
     .help = "with --gateway: forward the LAN's packets unchanged (the server routes the LAN to this client)",
     .doc = "false: forward the LAN's packets unchanged, for a server that routes the LAN's prefix to this "
            "client (its client_routes names this client's key)."},
    // [nat]
    {.section = "nat", .key = "tcp_timeout", .file = kBoth, .kind = K::Duration, .number = &S::nat_tcp_timeout_s,
     .lo = 10, .hi = 432'000, .doc = "How long an idle TCP mapping lives."},
    {.section = "nat", .key = "udp_timeout", .file = kBoth, .kind = K::Duration, .number = &S::nat_udp_timeout_s,
     .lo = 1, .hi = 86'400, .doc = "How long an idle UDP mapping lives."},
    {.section = "nat", .key = "port_range", .file = kBoth, .kind = K::Custom, .apply = apply_port_range,
     .expect = "a port range \"LOW-HIGH\" within 1024-65535, such as \"32768-61000\"",
     .show = [](const Settings& d) {
       std::string v = "\"";
       v.append(std::to_string(d.nat_port_min)).append("-").append(std::to_string(d.nat_port_max)).append("\"");
       return v;
     },
     .doc = "The source ports mappings use."},
    {.section = "nat", .key = "port_range_start", .file = kBoth, .kind = K::Int, .integer = &S::nat_port_min,
     .lo = 1024, .hi = 65535, .doc = "", .same_as = "nat.port_range"},
    {.section = "nat", .key = "port_range_end", .file = kBoth, .kind = K::Int, .integer = &S::nat_port_max,
     .lo = 1024, .hi = 65535, .doc = "", .same_as = "nat.port_range"},
    {.section = "nat", .key = "tunnel_ipv4", .file = kBoth, .kind = K::Custom, .apply = apply_ipv4_addr,
     .expect = "an IPv4 address such as \"10.0.85.2\"", .show = [](const Settings&) { return std::string("\"\""); },
     .doc = "", .same_as = "tun.ipv4_addr"},
    // [multipath]
    {.section = "multipath", .key = "max_uplinks", .flag = "--max-uplinks", .file = kOnClient, .cli = kOnClient,
     .kind = K::Int, .integer = &S::max_uplinks, .lo = 1, .hi = dp::kMaxUplinks, .help = "uplinks at most",
     .doc = "Uplinks at most (auto_discover stops adding beyond it)."},
    {.section = "multipath", .key = "retry_delay", .flag = "--retry-delay", .file = kOnClient, .cli = kOnClient,
     .kind = K::Duration, .number = &S::retry_delay_s, .lo = 0.05, .hi = 600,
     .help = "wait between handshake attempts of an uplink", .doc = "Wait between handshake attempts of an uplink."},
    {.section = "multipath", .key = "max_retries", .flag = "--max-retries", .file = kOnClient, .cli = kOnClient,
     .kind = K::Int, .integer = &S::max_retries, .lo = 0, .hi = 1'000'000,
     .help = "unanswered handshakes in a row after which an uplink waits twice as long each time (up to "
             "30 s); 0: never slow down",
     .doc = "An uplink whose last max_retries handshakes went unanswered waits twice as long before each "
            "next one, up to 30 s, until it gets an answer or its interface comes back up. 0: keep trying "
            "every retry_delay."},
    {.section = "multipath", .key = "probe_interval", .flag = "--probe-interval", .file = kBoth,
     .cli = kBoth | kOnBench, .kind = K::Duration, .number = &S::probe_interval_s, .lo = 0.05, .hi = 60,
     .help = "how often an idle uplink is probed (every 50 ms while one fails); probes are also keepalives",
     .doc = "Probe an idle uplink this often (every 50 ms while one fails); probes are the keepalives."},
    {.section = "multipath", .key = "busy_probe_interval", .flag = "--busy-probe-interval", .file = kBoth,
     .cli = kBoth | kOnBench, .kind = K::Duration, .number = &S::busy_probe_interval_s, .lo = 0.02, .hi = 60,
     .help = "how often an uplink that carries data is probed, so that a path dying under traffic is "
             "noticed quickly (at most --probe-interval)",
     .doc = "Probe an uplink that carries data this often, to notice a dying path quickly."},
    // [multipath.scheduler]
    {.section = "multipath.scheduler", .key = "strategy", .flag = "--strategy", .file = kBoth,
     .cli = kBoth | kOnBench, .kind = K::Text, .text = &S::strategy, .choices = kStrategies,
     .aliases = kStrategyAliases, .help = "how packets spread over uplinks",
     .doc = "How packets spread over the uplinks (on the server: a client's return traffic over that "
            "client's uplinks)."},
    {.section = "multipath.scheduler", .key = "weights", .flag = "--weights", .file = kOnClient,
     .cli = kOnClient | kOnBench, .kind = K::Numbers, .numbers = &S::weights,
     .help = "per-uplink weights for weighted_round_robin, in -i order",
     .doc = "weighted_round_robin: one positive weight per uplink, in uplinks order."},
    {.section = "multipath.scheduler", .key = "rtt_weight", .file = kBoth, .kind = K::Number,
     .number = &S::rtt_weight, .lo = 0, .hi = 1,
     .doc = "adaptive: how much RTT, loss, bandwidth and being behind NAT count."},
    {.section = "multipath.scheduler", .key = "loss_weight", .file = kBoth, .kind = K::Number,
     .number = &S::loss_weight, .lo = 0, .hi = 1, .doc = ""},
    {.section = "multipath.scheduler", .key = "bandwidth_weight", .file = kBoth, .kind = K::Number,
     .number = &S::bandwidth_weight, .lo = 0, .hi = 1, .doc = ""},
    {.section = "multipath.scheduler", .key = "nat_weight", .file = kBoth, .kind = K::Number,
     .number = &S::nat_weight, .lo = 0, .hi = 1, .doc = ""},
    {.section = "multipath.scheduler", .key = "nat_penalty_weight", .file = kBoth, .kind = K::Number,
     .number = &S::nat_weight, .lo = 0, .hi = 1, .doc = "", .same_as = "multipath.scheduler.nat_weight"},
    {.section = "multipath.scheduler", .key = "primary", .file = kBoth, .kind = K::Int, .integer = &S::primary,
     .lo = 0, .hi = dp::kMaxUplinks - 1,
     .doc = "primary_backup: the primary uplink (its index), and how long it must be Healthy again before "
            "traffic returns to it."},
    {.section = "multipath.scheduler", .key = "hysteresis", .file = kBoth, .kind = K::Duration,
     .number = &S::hysteresis_s, .lo = 0, .hi = 3600, .doc = ""},
    {.section = "multipath.scheduler", .key = "prefer_healthy", .file = kBoth, .kind = K::Bool,
     .boolean = &S::prefer_healthy,
     .doc = "Flows leave a Degraded uplink (three probes lost) while a Healthy one is left, rather than only "
            "once it is Unhealthy (six): faster failover (docs/LINKEM.md). Redundant and primary_backup keep "
            "using Degraded uplinks either way."},
};

const SectionDoc kSections[] = {
    {"log", kBoth, ""},
    {"control", kBoth, ""},
    {"metrics", kBoth, ""},
    {"server", kOnServer, ""},
    {"client", kOnClient, ""},
    {"transport", kBoth, ""},
    {"tun", kBoth, ""},
    {"routing", kOnClient, ""},
    {"nat", kOnServer, "The masquerade of nat_outbound: how long idle mappings live, and their source ports."},
    {"nat", kOnClient, "The masquerade of gateway mode: how long idle mappings live, and their source ports."},
    {"multipath", kBoth, ""},
    {"multipath.scheduler", kBoth, ""},
};

}  // namespace

std::span<const Setting> settings() { return kSettings; }

std::span<const SectionDoc> config_sections() { return kSections; }

std::vector<std::string> split_choices(const char* choices) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = choices; *p != '\0'; ++p) {
    if (*p == ',') {
      out.push_back(cur);
      cur.clear();
      if (p[1] == ' ') ++p;
    } else {
      cur += *p;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string long_flag(const Setting& k) {
  std::string flag = k.flag;
  flag = flag.substr(flag.rfind(',') + 1);
  if (!flag.empty() && flag[0] == '!') flag.erase(0, 1);
  return flag;
}

std::string full_choice(const Setting& k, const std::string& value) {
  if (k.aliases == nullptr) return value;
  for (const auto& pair : split_choices(k.aliases)) {
    const auto eq = pair.find('=');
    if (eq != std::string::npos && pair.compare(0, eq, value) == 0 && eq == value.size()) return pair.substr(eq + 1);
  }
  return value;
}

}  // namespace triglav::ctl
