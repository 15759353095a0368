// The Runtime's TUN addresses, and the policy routing of full-tunnel mode: every packet
// but the uplinks' own (marked) into the tunnel's table, whose default route is the TUN.
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>

#include "control/runtime.h"
#include "io/netlink.h"
#include "io/system.h"
#include "io/tun_device.h"

namespace triglav::ctl {

namespace {

io::Rule rule(int family, unsigned prio, unsigned table) {
  io::Rule r;
  r.family = family;
  r.priority = kRulePriority + prio;
  r.table = table;
  return r;
}
}  // namespace

// Removes what a previous run may have left (a crash cannot undo its rules), then
// installs the rules and the tunnel table's default routes.
void Runtime::route_everything(const TunSetup& tun) {
  for (int fam : {AF_INET, AF_INET6})
    for (unsigned p = 0; p < 100; ++p)
      for (int i = 0; i < 16 && nl_->del_rule_at(fam, kRulePriority + p).empty(); ++i) {
      }
  for (int fam : {AF_INET, AF_INET6})
    for (int i = 0; i < 8 && nl_->del_default_route(fam, 0, kTunnelTable).empty(); ++i) {
    }
  const bool v6 = io::ipv6_available();
  if (v6) io::set_ipv6(tun.name, true);  // so that its default route can lead there (and nowhere else)
  tunnel_table_ = true;
  auto fail = [&](const std::string& what, const std::string& err) {
    throw std::runtime_error("full tunnel: cannot add " + what + ": " + err);
  };
  std::string err = nl_->add_default_route(AF_INET, tun_->ifindex(), kTunnelTable);
  if (!err.empty()) fail("the IPv4 default route of table " + std::to_string(kTunnelTable), err);
  if (v6) {
    err = nl_->add_default_route(AF_INET6, tun_->ifindex(), kTunnelTable);
    if (!err.empty()) fail("the IPv6 default route of table " + std::to_string(kTunnelTable), err);
  }
  std::vector<io::Rule> rules;
  for (int fam : {AF_INET, AF_INET6}) {
    if (fam == AF_INET6 && !v6) continue;
    io::Rule own = rule(fam, 0, RT_TABLE_MAIN);  // the uplinks' own packets
    own.fwmark = kUplinkMark;
    own.mark_set = true;
    rules.push_back(own);
    io::Rule rest = rule(fam, 90, kTunnelTable);  // everything else
    rest.fwmark = kUplinkMark;
    rest.mark_set = true;
    rest.invert = true;
    rules.push_back(rest);
  }
  for (std::size_t i = 0; i < tun.exclude.size() && i < 30; ++i) {
    io::Rule ex = rule(AF_INET, 10 + static_cast<unsigned>(i), RT_TABLE_MAIN);
    const std::uint32_t net = tun.exclude[i].network_be();
    std::memcpy(ex.dst, &net, 4);
    ex.dst_len = tun.exclude[i].len;
    rules.push_back(ex);
  }
  for (std::size_t i = 0; v6 && i < tun.exclude6.size() && i < 30; ++i) {
    io::Rule ex = rule(AF_INET6, 10 + static_cast<unsigned>(i), RT_TABLE_MAIN);
    std::memcpy(ex.dst, tun.exclude6[i].addr.data(), 16);
    ex.dst_len = tun.exclude6[i].len;
    rules.push_back(ex);
  }
  if (v6) {  // link-local and multicast stay on the links (neighbour discovery)
    io::Rule ll = rule(AF_INET6, 40, RT_TABLE_MAIN);
    ll.dst[0] = 0xfe;
    ll.dst[1] = 0x80;
    ll.dst_len = 10;
    rules.push_back(ll);
    io::Rule mc = rule(AF_INET6, 41, RT_TABLE_MAIN);
    mc.dst[0] = 0xff;
    mc.dst_len = 8;
    rules.push_back(mc);
  }
  for (const auto& r : rules) {
    err = nl_->add_rule(r);
    if (!err.empty()) fail("policy rule " + std::to_string(r.priority), err);
    rules_.emplace_back(r.family, r.priority);
  }
}

void Runtime::remove_policy() noexcept {
  if (!nl_) return;
  for (const auto& [fam, prio] : rules_) nl_->del_rule_at(fam, prio);
  rules_.clear();
  if (tunnel_table_ && tun_) {
    nl_->del_default_route(AF_INET, tun_->ifindex(), kTunnelTable);
    if (io::ipv6_available()) nl_->del_default_route(AF_INET6, tun_->ifindex(), kTunnelTable);
  }
  tunnel_table_ = false;
}

std::string Runtime::tun_name() const { return tun_ ? tun_->name() : std::string(); }

std::string Runtime::set_address6(const std::array<std::uint8_t, 16>& addr) {
  if (!tun_) return {};
  if (!io::ipv6_available()) return "IPv6 is off on this machine";
  io::set_ipv6(tun_->name(), true);
  return nl_->add_address6(tun_->ifindex(), addr.data(), 64);
}

std::string Runtime::set_address(const io::Ipv4Prefix& addr) {
  return tun_ ? nl_->add_address(tun_->ifindex(), addr) : std::string();
}

}  // namespace triglav::ctl
