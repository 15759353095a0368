#include "control/host/nat.h"

#include <spdlog/spdlog.h>

#include <dirent.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "io/conntrack.h"
#include "io/system.h"

namespace triglav::ctl {
namespace {

constexpr const char* kForward = "/proc/sys/net/ipv4/ip_forward";
constexpr const char* kForward6 = "/proc/sys/net/ipv6/conf/all/forwarding";
// A UDP mapping that saw no answer, or only one exchange (a DNS query), lives this long
// at most (the kernel's own default); flows that keep going get udp_timeout.
constexpr int kUnrepliedMaxS = 30;

using io::read_sysctl;
using io::write_sysctl;

std::string prefix6_text(const std::array<std::uint8_t, 8>& p) {
  io::Ipv6Prefix net;
  std::memcpy(net.addr.data(), p.data(), p.size());
  net.len = 64;
  return net.to_string();
}

std::string conf6(const std::string& dev, const char* key) { return "/proc/sys/net/ipv6/conf/" + dev + "/" + key; }

// The interfaces with IPv6 configuration (not all, default or lo).
std::vector<std::string> ipv6_interfaces() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc/sys/net/ipv6/conf");
  if (d == nullptr) return out;
  for (int i = 0; i < 4096; ++i) {  // bounded: a directory of interfaces
    const dirent* e = readdir(d);
    if (e == nullptr) break;
    const std::string name = e->d_name;
    if (name != "." && name != ".." && name != "all" && name != "default" && name != "lo") out.push_back(name);
  }
  closedir(d);
  return out;
}

std::string timeouts(const char* fam, const char* l3, const NatSettings& s) {
  return std::string("  ct timeout tcp_idle_") + fam + " {\n"
         "    protocol tcp; l3proto " + l3 + ";\n"
         "    policy = { established: " + std::to_string(s.tcp_timeout_s) + " }\n"
         "  }\n"
         "  ct timeout udp_idle_" + fam + " {\n"
         "    protocol udp; l3proto " + l3 + ";\n"
         "    policy = { unreplied: " + std::to_string(std::min(s.udp_timeout_s, kUnrepliedMaxS)) +
         ", replied: " + std::to_string(s.udp_timeout_s) + " }\n"
         "  }\n";
}

std::string ruleset(KernelNat::Kind kind, const std::string& table, const std::string& tun,
                    const io::Ipv4Prefix& prefix, const NatSettings& s,
                    const std::optional<std::array<std::uint8_t, 8>>& prefix6, bool v6) {
  const std::string q = "\"" + tun + "\"";
  const std::string mark = std::to_string(kNatMark);
  // Which forwarded connections we NAT: marked on their first packet, before conntrack
  // confirms them (which is also when a timeout policy can still be attached).
  std::string ours;
  if (kind == KernelNat::Kind::Outbound) {
    ours = "    iifname " + q + " oifname != " + q + " ip saddr " +
           io::Ipv4Prefix{prefix.network_be(), prefix.len}.to_string() + " ct state new ct mark set " + mark + "\n";
    if (prefix6)
      ours += "    iifname " + q + " oifname != " + q + " ip6 saddr " + prefix6_text(*prefix6) +
              " ct state new ct mark set " + mark + "\n";
  } else {
    ours = "    iifname != " + q + " oifname " + q + " ct state new ct mark set " + mark + "\n";
  }
  const std::string clamp = "    oifname " + q + " tcp flags syn tcp option maxseg size set rt mtu\n"
                            "    iifname " + q + " tcp flags syn tcp option maxseg size set rt mtu\n";
  // "add" then "delete" removes a table left by a crash whether or not there is one (the
  // ip family: what earlier versions used).
  const std::string fresh = "add table ip " + table + "\ndelete table ip " + table + "\n" +
                            "add table inet " + table + "\ndelete table inet " + table + "\n";
  if (kind == KernelNat::Kind::Routed)
    return fresh + "table inet " + table + " {\n"
           "  chain forward {\n"
           "    type filter hook forward priority filter; policy accept;\n" + clamp +
           "  }\n"
           "}\n";
  std::string set_timeouts;
  for (const char* fam : {"ipv4", "ipv6"}) {
    if (std::string(fam) == "ipv6" && !v6) continue;
    for (const char* l4 : {"tcp", "udp"})
      set_timeouts += "    ct mark " + mark + " ct state new meta nfproto " + fam + " meta l4proto " + l4 +
                      " ct timeout set \"" + l4 + "_idle_" + fam + "\"\n";
  }
  return fresh +
         "table inet " + table + " {\n" + timeouts("ipv4", "ip", s) + (v6 ? timeouts("ipv6", "ip6", s) : "") +
         "  chain forward {\n"
         "    type filter hook forward priority filter; policy accept;\n" + ours + set_timeouts + clamp +
         "  }\n"
         "  chain postrouting {\n"
         "    type nat hook postrouting priority srcnat; policy accept;\n"
         "    ct mark " + mark + " meta l4proto { tcp, udp } masquerade to :" + std::to_string(s.port_min) + "-" +
         std::to_string(s.port_max) + "\n"
         "    ct mark " + mark + " masquerade\n"
         "  }\n"
         "}\n";
}

}  // namespace

KernelNat::KernelNat(Kind kind, const std::string& tun, const io::Ipv4Prefix& prefix, const NatSettings& s,
                     const std::optional<std::array<std::uint8_t, 8>>& prefix6)
    : what_(kind == Kind::Outbound ? "--nat-outbound" : "--gateway"),
      nat_(kind != Kind::Routed),
      table_("triglav_" + tun),
      forward_before_(read_sysctl(kForward)) {
  const bool v6 = io::ipv6_available();
  const bool nat6 = kind == Kind::Outbound && prefix6 && v6;
  const std::string err = nft_.run(ruleset(kind, table_, tun, prefix, s, nat6 ? prefix6 : std::nullopt, v6));
  if (!err.empty()) throw std::runtime_error(std::string(what_) + ": nftables: " + err);
  auto undo = [&](const std::string& why) {
    nft_.run("delete table inet " + table_ + "\n");
    write_sysctl(kForward, forward_before_);
    throw std::runtime_error(std::string(what_) + ": " + why);
  };
  if (!write_sysctl(kForward, "1")) undo("cannot enable net.ipv4.ip_forward");
  if (nat6) {
    const std::string before = read_sysctl(kForward6);
    if (before != "1") {
      // Switching forwarding on drops the default routes learned from router
      // advertisements, and ignores further ones, on interfaces with accept_ra 1; with 2
      // they stay. Each interface's own forwarding value is kept, to be put back too.
      for (const std::string& dev : ipv6_interfaces()) {
        forward6_each_.emplace_back(dev, read_sysctl(conf6(dev, "forwarding")));
        if (dev != tun && read_sysctl(conf6(dev, "accept_ra")) == "1" &&
            write_sysctl(conf6(dev, "accept_ra"), "2"))
          ra_kept_.push_back(dev);
      }
      if (!write_sysctl(kForward6, "1")) {
        restore6();
        undo("cannot enable net.ipv6.conf.all.forwarding");
      }
      forward6_before_ = before;
      for (const auto& dev : ra_kept_)
        spdlog::info("{}: {} keeps taking router advertisements while IPv6 forwarding is on (accept_ra 2 until exit)",
                     what_, dev);
    }
  }
  if (kind == Kind::Outbound)
    spdlog::info("outbound NAT: {}{} masqueraded (nftables table inet {}), IP forwarding on",
                 io::Ipv4Prefix{prefix.network_be(), prefix.len}.to_string(),
                 nat6 ? " and " + prefix6_text(*prefix6) : std::string(), table_);
  else if (kind == Kind::Gateway)
    spdlog::info("gateway: traffic forwarded into {} masqueraded to the tunnel address (nftables table inet {}), "
                 "IP forwarding on", tun, table_);
  else
    spdlog::info("gateway: traffic forwarded into {} unchanged, for the server to route (nftables table inet {}), "
                 "IP forwarding on", tun, table_);
}

KernelNat::~KernelNat() {
  const std::string err = nft_.run("delete table inet " + table_ + "\n");
  if (!err.empty()) spdlog::warn("{}: removing table inet {}: {}", what_, table_, err);
  if (!write_sysctl(kForward, forward_before_)) spdlog::warn("{}: cannot restore net.ipv4.ip_forward", what_);
  if (!forward6_before_.empty() && !write_sysctl(kForward6, forward6_before_))
    spdlog::warn("{}: cannot restore net.ipv6.conf.all.forwarding", what_);
  restore6();
}

// Writing all.forwarding sets every interface's own value: put each back, then accept_ra.
void KernelNat::restore6() noexcept {
  for (const auto& [dev, v] : forward6_each_) write_sysctl(conf6(dev, "forwarding"), v);
  for (const auto& dev : ra_kept_) write_sysctl(conf6(dev, "accept_ra"), "1");
  forward6_each_.clear();
  ra_kept_.clear();
}

std::optional<std::uint64_t> KernelNat::active_entries() const {
  if (!nat_) return 0;
  std::string err;
  auto n = io::count_conntrack_marked(kNatMark, err);
  if (!n && !warned_) {
    spdlog::warn("{}: cannot count NAT entries: {}", what_, err);
    warned_ = true;
  }
  return n;
}

}  // namespace triglav::ctl
