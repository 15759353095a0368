// The rules between settings (control/config.h: check_settings): what no single key's
// range can say, and the files the settings name. `triglav check`, `--check` and every
// start of `server` and `tun` run them, so a mistake is found before anything is set up.
#include <algorithm>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "control/authorized_clients.h"
#include "control/config.h"
#include "control/key_file.h"
#include "control/settings.h"
#include "crypto/authkey.h"
#include "dataplane/group.h"
#include "io/endpoint.h"

namespace triglav::ctl {
namespace {

struct Checker {
  const Settings& s;
  Role role;
  const ConfigSource& where;
  std::vector<ConfigProblem> out;

  // "config F line N: [section] key" where the file gave it, else its flag, else the
  // key as a file would name it.
  void add(const std::string& key, const std::string& msg) {
    const auto dot = key.rfind('.');
    const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
    if (auto it = where.lines.find(key); it != where.lines.end()) {
      out.push_back({it->second, "config " + where.path + " line " + std::to_string(it->second) + ": [" + section +
                                     "] " + name + ": " + msg});
      return;
    }
    std::string flag;
    for (const auto& k : settings())
      if ((k.file & role_bit(role)) != 0 && section == k.section && name == k.key && *k.flag != '\0')
        flag = long_flag(k);
    if (flag.empty()) flag = key == "client.auth_key" ? "bad AuthKey" : "[" + section + "] " + name;
    out.push_back({0, flag + ": " + msg});
  }

  void weights() {
    if (s.rtt_weight + s.loss_weight + s.bandwidth_weight + s.nat_weight <= 0)
      add("multipath.scheduler.rtt_weight",
          "rtt_weight, loss_weight, bandwidth_weight and nat_weight must not all be 0 (adaptive weighs uplinks by them)");
  }

  void nat() {
    if (s.nat_port_min > s.nat_port_max)
      add(where.lines.contains("nat.port_range_start") ? "nat.port_range_start" : "nat.port_range",
          "the first port (" + std::to_string(s.nat_port_min) + ") is above the last (" +
              std::to_string(s.nat_port_max) + ")");
  }

  // The tunnel prefix: ipv4_addr and ipv4_netmask, or the role's default.
  std::optional<io::Ipv4Prefix> tunnel(const char* default_addr) {
    std::string err;
    auto p = io::parse_ipv4_prefix(tunnel_address_text(s, default_addr), 24, err);
    if (!p) add("tun.ipv4_addr", err);
    return p;
  }

  void server(unsigned how) {
    weights();
    nat();
    const auto tun = tunnel("10.0.85.1");
    if (tun && tun->len > 31)
      add("tun.ipv4_netmask", "the tunnel prefix /" + std::to_string(tun->len) + " leaves no address for clients");
    for (const auto& r : s.routes)
      if (r.find(':') != std::string::npos)
        add("tun.routes", r + ": the server routes IPv6 to its clients by their /64 addresses; IPv6 prefixes are "
                              "for clients");
    if (!s.client_routes.empty() && s.authorized_clients.empty())
      add("server.client_routes", "needs authorized_clients (--authorized-clients): a route belongs to a client key");
    std::vector<std::pair<std::string, io::Ipv4Prefix>> seen;
    for (const auto& r : s.client_routes) {
      const auto eq = r.find('=');
      std::string err;
      const auto p = eq == std::string::npos || eq == 0 ? std::nullopt : io::parse_ipv4_prefix(r.substr(eq + 1), 32, err);
      if (!p) {
        add("server.client_routes", "'" + r + "': give NAME=PREFIX, such as office=192.168.50.0/24");
        continue;
      }
      const io::Ipv4Prefix net{p->network_be(), p->len};
      const std::string name = r.substr(0, eq);
      auto overlaps = [](const io::Ipv4Prefix& x, const io::Ipv4Prefix& y) {
        const std::uint32_t m = io::Ipv4Prefix{0, std::min(x.len, y.len)}.mask_be();
        return (x.addr_be & m) == (y.addr_be & m);
      };
      if (tun && overlaps(net, *tun)) add("server.client_routes", r + " overlaps the tunnel prefix " + tun->to_string());
      for (const auto& [other, q] : seen)
        if (overlaps(net, q)) add("server.client_routes", r + " overlaps " + other + "=" + q.to_string());
      seen.emplace_back(name, net);
      if (std::count_if(seen.begin(), seen.end(), [&](const auto& c) { return c.first == name; }) ==
          static_cast<long>(dp::kMaxClientSubnets) + 1)
        add("server.client_routes", "at most " + std::to_string(dp::kMaxClientSubnets) + " networks per client key (" +
                                        name + ")");
    }
    if ((how & kCheckFiles) == 0) return;
    if (s.key_file.empty()) {
      if ((how & kKeyMayBeMade) == 0) add("server.key_file", "no key file: make one with `triglav keygen --output FILE`");
    } else if ((how & kKeyMayBeMade) == 0 || std::filesystem::exists(s.key_file)) {
      try {
        (void)load_key_file(s.key_file);
      } catch (const std::exception& e) {
        add("server.key_file", e.what());
      }
    }
    if (!s.authorized_clients.empty()) {
      try {
        (void)AuthorizedClients::load(s.authorized_clients);
      } catch (const std::exception& e) {
        add("server.authorized_clients", e.what());
      }
    }
  }

  void client(unsigned how) {
    weights();
    nat();
    if (s.authkey.empty()) {
      out.push_back({0, "the client needs the server's AuthKey: as the argument of `triglav tun`, or auth_key in "
                        "[client]"});
    } else {
      crypto::AuthKey k;
      std::string err;
      if (!crypto::decode_authkey(s.authkey, k, err)) add("client.auth_key", err);
      else if (k.addresses.empty() && s.endpoint.empty())
        add("client.auth_key", "it holds no server address: give one as [client] endpoint (--endpoint IP:PORT)");
    }
    if (!s.ipv4.empty() && s.ipv4.front() != '/') (void)tunnel("10.0.85.2");
    if (s.reject_after_s <= s.rekey_after_s)
      add("transport.reject_after", "must exceed rekey_after (--rekey-after, " +
                                        std::to_string(static_cast<int>(s.rekey_after_s)) +
                                        " s): a session would end before its keys are renewed");
    const std::size_t uplinks = std::max<std::size_t>(1, s.interfaces.size());
    if (!s.weights.empty() && s.weights.size() != uplinks)
      add("multipath.scheduler.weights", "one weight per uplink (" + std::to_string(uplinks) + "), in uplinks order");
    if (s.auto_discover && s.no_auto_discover)
      add("client.auto_discover", "--auto-discover and --no-auto-discover: give one");
    if (static_cast<int>(s.interfaces.size()) > s.max_uplinks)
      add("client.uplinks", std::to_string(s.interfaces.size()) + " interfaces, more than max_uplinks (" +
                                std::to_string(s.max_uplinks) + ")");
    std::size_t ex4 = 0, ex6 = 0;
    for (const auto& e : s.exclude) ++(e.find(':') != std::string::npos ? ex6 : ex4);
    if (!s.exclude.empty() && !s.full_tunnel) add("routing.exclude_routes", "only applies with full_tunnel (--full-tunnel)");
    if (ex4 > 30 || ex6 > 30) add("routing.exclude_routes", "at most 30 prefixes of each family");
    if (s.dns.size() > 3) add("routing.dns_servers", "at most 3 servers (the resolver reads no more)");
    if (s.tcp_fallback && s.tcp_fallback_after_s >= s.handshake_timeout_s)
      add("client.tcp_fallback_after", "must be shorter than handshake_timeout (--handshake-timeout), or TCP is never tried at "
                                        "start");
    if (!s.gateway_nat && !s.gateway) add("routing.gateway_nat", "false only applies with gateway (--gateway)");
    if (s.gateway && s.full_tunnel && s.exclude.empty())
      add("routing.gateway", "with full_tunnel (--full-tunnel): give the LAN in exclude_routes (--exclude PREFIX), "
                             "or its answers would go into the tunnel");
    if ((how & kCheckFiles) != 0 && !s.client_key_file.empty()) {
      try {
        (void)load_client_key(s.client_key_file);
      } catch (const std::exception& e) {
        add("client.client_key_file", e.what());
      }
    }
  }
};

}  // namespace

std::vector<ConfigProblem> check_settings(const Settings& s, Role role, const ConfigSource& where, unsigned how) {
  Checker c{s, role, where, {}};
  if (role == Role::Server) c.server(how);
  else c.client(how);
  in_file_order(c.out);
  return c.out;
}

}  // namespace triglav::ctl
