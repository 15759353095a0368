#include "control/cli/diagnose.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "control/cli/status_cli.h"
#include "control/client.h"
#include "control/config.h"
#include "control/handshake.h"
#include "crypto/key.h"
#include "crypto/authkey.h"
#include "dataplane/handshake_guard.h"
#include "io/ring.h"
#include "io/system.h"
#include "io/tun_device.h"
#include "io/udp_socket.h"

namespace triglav::ctl {
namespace {

class Report {
 public:
  void ok(const std::string& what, const std::string& detail) { line("ok  ", what, detail, ""); }
  void warn(const std::string& what, const std::string& detail, const std::string& fix) {
    line("warn", what, detail, fix);
  }
  void fail(const std::string& what, const std::string& detail, const std::string& fix) {
    line("FAIL", what, detail, fix);
    ++failures_;
  }
  int failures() const { return failures_; }

 private:
  static void line(const char* tag, const std::string& what, const std::string& detail, const std::string& fix) {
    std::printf("%s  %-14s %s\n", tag, what.c_str(), detail.c_str());
    if (!fix.empty()) std::printf("      %-14s fix: %s\n", "", fix.c_str());
  }
  int failures_ = 0;
};

std::optional<std::string> read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (!f || !std::getline(f, s)) return std::nullopt;
  return s;
}

int read_int(const std::string& path, int fallback) {
  auto s = read_line(path);
  if (!s) return fallback;
  try {
    return std::stoi(*s);
  } catch (...) {
    return fallback;
  }
}

// Interfaces that are up with an IPv4 address: not loopback, tunnels or TUN/TAP.
std::vector<std::string> uplink_candidates() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const unsigned f = i->ifa_flags;
    if (!(f & IFF_UP) || (f & IFF_LOOPBACK) || (f & IFF_POINTOPOINT)) continue;
    const std::string n = i->ifa_name;
    if (access(("/sys/class/net/" + n + "/tun_flags").c_str(), F_OK) == 0) continue;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  freeifaddrs(list);
  return out;
}

void check_privileges(Report& r) {
  if (io::has_net_admin()) r.ok("privileges", "CAP_NET_ADMIN");
  else r.fail("privileges", "no CAP_NET_ADMIN: triglav cannot create its TUN device or routes",
              "run as root (or grant CAP_NET_ADMIN)");
}

void check_tun(Report& r) {
  struct stat st{};
  if (stat("/dev/net/tun", &st) != 0) {
    r.fail("tun", "/dev/net/tun does not exist", "modprobe tun (or create it: mknod /dev/net/tun c 10 200)");
    return;
  }
  if (!S_ISCHR(st.st_mode)) {
    r.fail("tun", "/dev/net/tun is not a character device", "remove it and create the node: mknod /dev/net/tun c 10 200");
    return;
  }
  if (!io::has_net_admin()) {
    r.warn("tun", "/dev/net/tun exists; creating a device needs CAP_NET_ADMIN", "run diagnose as root");
    return;
  }
  try {
    io::TunDevice t = io::TunDevice::create("tgdiag" + std::to_string(getpid() % 100000), 1);
    r.ok("tun", "a multi-queue TUN device can be created");
  } catch (const std::exception& e) {
    r.fail("tun", e.what(), "load the tun module and run as root");
  }
}

void check_io_uring(Report& r) {
  const int disabled = read_int("/proc/sys/kernel/io_uring_disabled", 0);
  try {
    io::Ring ring(8);
    io::BufRing buffers(ring, 0, 8, 2048);  // provided-buffer rings: Linux 5.19
    r.ok("io_uring", "rings and provided-buffer rings work");
  } catch (const std::exception& e) {
    r.fail("io_uring", e.what(),
           disabled != 0 ? "sysctl -w kernel.io_uring_disabled=0" : "a kernel of 6.0 or later with io_uring enabled");
  }
}

void check_offloads(Report& r) {
  const bool gso = io::udp_gso_supported(), gro = io::udp_gro_supported();
  if (gso && gro) r.ok("udp offloads", "UDP GSO and GRO available");
  else r.warn("udp offloads", std::string("missing:") + (gso ? "" : " UDP GSO") + (gro ? "" : " UDP GRO") +
                                  " (one datagram per system call: slower, still correct)",
              "a kernel of 5.0 or later");
}

void check_interface(Report& r, const std::string& name, int tunnel_mtu) {
  if (if_nametoindex(name.c_str()) == 0) {
    r.fail("uplink " + name, "no such interface", "check the name (ip link)");
    return;
  }
  const std::string base = "/sys/class/net/" + name;
  const int mtu = read_int(base + "/mtu", 0);
  const int need = tunnel_mtu + static_cast<int>(dp::kMaxDataOverhead) + 28;
  if (mtu > 0 && mtu < need)
    r.warn("uplink " + name, "MTU " + std::to_string(mtu) + " is below the " + std::to_string(need) +
                                 " bytes a full tunnel packet needs: packets will be fragmented",
           "--mtu " + std::to_string(mtu - static_cast<int>(dp::kMaxDataOverhead) - 28));
  else
    r.ok("uplink " + name, "MTU " + std::to_string(mtu) + " carries tunnel MTU " + std::to_string(tunnel_mtu));
  const std::string oper = read_line(base + "/operstate").value_or("unknown");
  if (oper == "down") r.warn("uplink " + name, "operstate down: no carrier", "plug it in / bring the link up");
  // Strict reverse-path filtering drops packets that arrive on an interface other than
  // the one the route back would use: with several uplinks, replies can.
  const int rp = std::max(read_int("/proc/sys/net/ipv4/conf/all/rp_filter", 0),
                          read_int("/proc/sys/net/ipv4/conf/" + name + "/rp_filter", 0));
  if (rp == 1)
    r.warn("uplink " + name, "rp_filter is strict (1): replies that come back on another uplink are dropped",
           "sysctl -w net.ipv4.conf." + name + ".rp_filter=2 net.ipv4.conf.all.rp_filter=2");
}

void check_clock(Report& r) {
  timex tx{};
  const int state = adjtimex(&tx);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const long year = 1970 + std::chrono::duration_cast<std::chrono::hours>(now).count() / (24 * 365);
  if (year < 2024) {
    r.fail("clock", "the clock says " + std::to_string(year),
           "set the time (NTP): handshake timestamps must grow across restarts");
    return;
  }
  if (state == TIME_ERROR)
    r.warn("clock", "not synchronised: if it steps back, the server refuses new handshakes until it passes "
                    "the last accepted time",
           "run an NTP client (systemd-timesyncd, chrony)");
  else
    r.ok("clock", "synchronised");
}

void check_full(Report& r) {
  if (read_int("/proc/sys/net/ipv4/ip_forward", 0) == 1) r.ok("forwarding", "net.ipv4.ip_forward = 1");
  else r.warn("forwarding", "net.ipv4.ip_forward = 0: a server does not route clients beyond itself",
              "sysctl -w net.ipv4.ip_forward=1 (servers that route, gateways)");
  if (io::ipv6_available()) r.ok("ipv6", "available (full tunnel routes it into the tunnel)");
  else r.ok("ipv6", "disabled in this kernel");
}

// Whether a path-MTU probe of `size` bytes reaches the server: sent with DF set (and the
// kernel's own path-MTU guess ignored), twice, an echo naming that size within 300 ms.
bool probe_arrives(const io::UdpSocket& s, const io::Endpoint& to, std::size_t size, const crypto::Key32& mac1) {
  std::vector<std::uint8_t> pkt(size);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::uint32_t id = 0;
    crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&id), sizeof id});
    dp::make_probe(pkt, id, mac1);
    if (!s.send_to(pkt.data(), pkt.size(), to)) return false;  // EMSGSIZE: beyond the interface's MTU
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    for (int i = 0; i < 100 && std::chrono::steady_clock::now() < until; ++i) {
      pollfd pfd{s.fd(), POLLIN, 0};
      if (poll(&pfd, 1, 30) <= 0) continue;
      std::uint8_t buf[64];
      const ssize_t n = recv(s.fd(), buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) continue;
      const auto len = dp::open_probe_echo({buf, static_cast<std::size_t>(n)}, id, mac1);
      if (len && *len == size) return true;
    }
  }
  return false;
}

// The largest UDP payload that reaches the server through the uplink (binary search
// with padded probes), against what a full tunnel packet needs.
void check_path_mtu(Report& r, const std::string& what, const std::string& up, const io::Endpoint& to,
                    const crypto::PublicKey& server, int tunnel_mtu) {
  const bool v6 = to.family() == AF_INET6;
  const int headers = v6 ? 48 : 28;  // IP and UDP
  const std::uint8_t any6[16] = {};
  io::UdpSocket s = io::UdpSocket::bind(v6 ? io::Endpoint::from_ipv6(any6, 0) : io::Endpoint::from_ipv4(0, 0), up);
  const int probe = v6 ? IPV6_PMTUDISC_PROBE : IP_PMTUDISC_PROBE;
  setsockopt(s.fd(), v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU_DISCOVER : IP_MTU_DISCOVER, &probe, sizeof probe);
  const crypto::Key32 mac1 = dp::HandshakeMacKeys::for_server(server).mac1;
  std::size_t lo = dp::kInitLen;  // an initiation got through
  if (!probe_arrives(s, to, lo, mac1)) {
    r.warn(what + " via " + up, "path MTU: the server does not echo probes",
           "a server of an older version, or one under load: try again later");
    return;
  }
  const int link = read_int("/sys/class/net/" + up + "/mtu", 1500);
  std::size_t hi = std::min<std::size_t>(dp::kProbeMaxLen, static_cast<std::size_t>(std::max(link - headers, 0)));
  if (hi > lo && probe_arrives(s, to, hi, mac1)) lo = hi;
  for (int i = 0; i < 16 && hi > lo + 1; ++i) {  // lo arrives, hi does not
    const std::size_t mid = lo + (hi - lo) / 2;
    (probe_arrives(s, to, mid, mac1) ? lo : hi) = mid;
  }
  const int payload = static_cast<int>(lo), need = tunnel_mtu + static_cast<int>(dp::kMaxDataOverhead);
  const std::string found = "path MTU " + std::to_string(payload + headers) + " (UDP payloads of " +
                            std::to_string(payload) + " bytes arrive)";
  const int fits = payload - static_cast<int>(dp::kMaxDataOverhead);
  if (payload >= need)
    r.ok(what + " via " + up, found + ": carries tunnel MTU " + std::to_string(tunnel_mtu));
  else if (fits < 576)
    r.fail(what + " via " + up, found + ": too small for a tunnel (tunnel MTU 576 at least)",
           "find the hop that drops big packets (tracepath -n to the server)");
  else
    r.warn(what + " via " + up, found + ": tunnel MTU " + std::to_string(tunnel_mtu) + " needs " +
                                     std::to_string(need) + ", so full-size tunnel packets are lost on the way",
           "--mtu " + std::to_string(fits) + " (on client and server)");
}

// Sends an initiation through the uplink to each of the AuthKey's addresses (or to
// `endpoint`, the address the client is given instead) and waits for the answer. It asks
// for tunnel address 0.0.0.0, which no server grants: a server that holds the key
// answers "address refused", one that does not "handshake failed".
void check_connectivity(Report& r, const std::string& authkey, const std::string& endpoint,
                        const std::vector<std::string>& uplinks, int tunnel_mtu) {
  crypto::AuthKey key;
  std::string err;
  if (!crypto::decode_authkey(authkey, key, err)) {
    r.fail("connectivity", "bad AuthKey: " + err, "copy it again from the server");
    return;
  }
  std::vector<io::Endpoint> endpoints = authkey_endpoints(key);
  if (!endpoint.empty()) {
    const auto given = io::parse_endpoint(endpoint, err);
    if (!given) {
      r.fail("connectivity", "bad endpoint " + endpoint + ": " + err, "give the server as ADDRESS:PORT");
      return;
    }
    endpoints = {*given};
  }
  if (endpoints.empty()) {
    r.fail("connectivity", "the AuthKey holds no server address", "use the server's AuthKey with --address");
    return;
  }
  for (const std::string& up : uplinks) {
    for (const io::Endpoint& to : endpoints) {
      const std::string what = "server " + to.to_string();
      try {
        const std::uint8_t any6[16] = {};
        io::UdpSocket s = io::UdpSocket::bind(
            to.family() == AF_INET6 ? io::Endpoint::from_ipv6(any6, 0) : io::Endpoint::from_ipv4(0, 0), up);
        dp::InitPayload p;
        crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&p.sender_index), sizeof p.sender_index});
        p.sender_index |= 1;
        crypto::random_bytes({reinterpret_cast<std::uint8_t*>(&p.client_id), sizeof p.client_id});
        p.timestamp_ns = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count());
        ClientHandshake hs(key.server_key, p);
        const auto t0 = std::chrono::steady_clock::now();
        if (!s.send_to(hs.initiation().data(), hs.initiation().size(), to)) {
          r.fail(what + " via " + up, "cannot send: " + std::string(std::strerror(errno)),
                 "check the routes through " + up + " (ip route)");
          continue;
        }
        std::optional<dp::Header> answer;
        for (int waited = 0; waited < 2000 && !answer;) {
          pollfd pfd{s.fd(), POLLIN, 0};
          if (poll(&pfd, 1, 100) <= 0) {
            waited += 100;
            continue;
          }
          std::uint8_t buf[256];
          const ssize_t n = recv(s.fd(), buf, sizeof buf, MSG_DONTWAIT);
          dp::Header h;
          if (n > 0 && dp::decode_header({buf, static_cast<std::size_t>(n)}, h) == dp::HeaderError::Ok &&
              h.receiver == p.sender_index)
            answer = h;
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        char t[32];
        std::snprintf(t, sizeof t, "%.1f ms", ms);
        if (!answer) {
          r.fail(what + " via " + up, "no answer within 2 s",
                 "is the server running and UDP " + std::to_string(to.port()) + " open on its firewall?");
        } else if (answer->type == dp::PacketType::Error &&
                   answer->aux == static_cast<std::uint8_t>(dp::ErrorCode::HandshakeFailed)) {
          r.fail(what + " via " + up, std::string("answers in ") + t + " but holds another key",
                 "get the current AuthKey from the server");
        } else if (answer->type == dp::PacketType::Error &&
                   answer->aux == static_cast<std::uint8_t>(dp::ErrorCode::StaleTimestamp)) {
          r.fail(what + " via " + up, std::string("answers in ") + t + ", the key is right, but it refuses this clock",
                 "set this machine's clock (NTP): the server takes timestamps within its max_clock_skew of its own");
        } else {
          r.ok(what + " via " + up, std::string("answers in ") + t + "; the key is right");
          check_path_mtu(r, what, up, to, key.server_key, tunnel_mtu);
        }
      } catch (const std::exception& e) {
        r.fail(what + " via " + up, e.what(), "run as root; check the interface");
      }
    }
  }
}

}  // namespace

int run_diagnose(const DiagnoseOptions& o) {
  Report r;
  check_privileges(r);
  check_tun(r);
  check_io_uring(r);
  check_offloads(r);
  const std::vector<std::string> ups = o.interfaces.empty() ? uplink_candidates() : o.interfaces;
  if (ups.empty()) r.fail("uplinks", "no interface is up with an IPv4 address", "bring an uplink up (ip link, DHCP)");
  for (const auto& u : ups) check_interface(r, u, o.mtu);
  check_clock(r);
  if (o.full) check_full(r);
  if (o.connectivity) {
    std::string authkey = o.authkey, endpoint, why;
    if (authkey.empty() && !o.config.empty()) {  // the client config's auth_key (and endpoint)
      Settings s;
      const auto problems = read_config_file(o.config, Role::Client, s);
      if (!problems.empty()) why = problems.front().message;
      else if (s.authkey.empty()) why = "config " + o.config + " has no [client] auth_key";
      else r.ok("connectivity", "AuthKey from " + o.config), authkey = s.authkey, endpoint = s.endpoint;
    } else if (authkey.empty()) {  // the running client's (and its --endpoint)
      try {
        const RunningClient c = running_client(o.socket);
        authkey = c.authkey;
        endpoint = c.endpoint;
        r.ok("connectivity", "AuthKey of the running client");
      } catch (const std::exception& e) {
        why = e.what();
      }
    }
    if (authkey.empty())
      r.fail("connectivity", "no AuthKey: " + why,
             "triglav diagnose --connectivity tg1_..., or --config CLIENT.toml, or run it beside the client");
    else
      check_connectivity(r, authkey, endpoint, ups, o.mtu);
  }
  std::printf("%s\n", r.failures() == 0 ? "no problems found" : (std::to_string(r.failures()) + " problem(s) found").c_str());
  return r.failures() == 0 ? 0 : 1;
}

}  // namespace triglav::ctl
