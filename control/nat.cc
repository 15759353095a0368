#include "control/nat.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "io/conntrack.h"

namespace triglav::ctl {
namespace {

constexpr const char* kForward = "/proc/sys/net/ipv4/ip_forward";
// A UDP mapping that saw no answer, or only one exchange (a DNS query), lives this long
// at most (the kernel's own default); flows that keep going get udp_timeout.
constexpr int kUnrepliedMaxS = 30;

std::string read_forward() {
  std::ifstream f(kForward);
  std::string v;
  std::getline(f, v);
  return v.empty() ? "0" : v;
}

bool write_forward(const std::string& v) {
  std::ofstream f(kForward);
  f << v << "\n";
  return static_cast<bool>(f);
}

std::string ruleset(KernelNat::Kind kind, const std::string& table, const std::string& tun,
                    const io::Ipv4Prefix& prefix, const NatSettings& s) {
  const std::string q = "\"" + tun + "\"";
  // Which forwarded connections we NAT: marked on their first packet, before conntrack
  // confirms them (which is also when a timeout policy can still be attached).
  const std::string ours = kind == KernelNat::Kind::Outbound
                               ? "iifname " + q + " oifname != " + q + " ip saddr " +
                                     io::Ipv4Prefix{prefix.network_be(), prefix.len}.to_string()
                               : "iifname != " + q + " oifname " + q;
  const std::string mark = std::to_string(kNatMark);
  const std::string clamp = "    oifname " + q + " tcp flags syn tcp option maxseg size set rt mtu\n"
                            "    iifname " + q + " tcp flags syn tcp option maxseg size set rt mtu\n";
  // "add" then "delete" removes a table left by a crash whether or not there is one.
  const std::string fresh = "add table ip " + table + "\ndelete table ip " + table + "\n";
  if (kind == KernelNat::Kind::Routed)
    return fresh + "table ip " + table + " {\n"
           "  chain forward {\n"
           "    type filter hook forward priority filter; policy accept;\n" + clamp +
           "  }\n"
           "}\n";
  return fresh +
         "table ip " + table + " {\n"
         "  ct timeout tcp_idle {\n"
         "    protocol tcp; l3proto ip;\n"
         "    policy = { established: " + std::to_string(s.tcp_timeout_s) + " }\n"
         "  }\n"
         "  ct timeout udp_idle {\n"
         "    protocol udp; l3proto ip;\n"
         "    policy = { unreplied: " + std::to_string(std::min(s.udp_timeout_s, kUnrepliedMaxS)) +
         ", replied: " + std::to_string(s.udp_timeout_s) + " }\n"
         "  }\n"
         "  chain forward {\n"
         "    type filter hook forward priority filter; policy accept;\n"
         "    " + ours + " ct state new ct mark set " + mark + "\n"
         "    ct mark " + mark + " ct state new meta l4proto tcp ct timeout set \"tcp_idle\"\n"
         "    ct mark " + mark + " ct state new meta l4proto udp ct timeout set \"udp_idle\"\n" + clamp +
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

KernelNat::KernelNat(Kind kind, const std::string& tun, const io::Ipv4Prefix& prefix, const NatSettings& s)
    : what_(kind == Kind::Outbound ? "--nat-outbound" : "--gateway"),
      nat_(kind != Kind::Routed),
      table_("triglav_" + tun),
      forward_before_(read_forward()) {
  const std::string err = nft_.run(ruleset(kind, table_, tun, prefix, s));
  if (!err.empty()) throw std::runtime_error(std::string(what_) + ": nftables: " + err);
  if (!write_forward("1")) {
    nft_.run("delete table ip " + table_ + "\n");
    throw std::runtime_error(std::string(what_) + ": cannot enable net.ipv4.ip_forward");
  }
  if (kind == Kind::Outbound)
    spdlog::info("outbound NAT: {} masqueraded (nftables table ip {}), IP forwarding on",
                 io::Ipv4Prefix{prefix.network_be(), prefix.len}.to_string(), table_);
  else if (kind == Kind::Gateway)
    spdlog::info("gateway: traffic forwarded into {} masqueraded to the tunnel address (nftables table ip {}), "
                 "IP forwarding on", tun, table_);
  else
    spdlog::info("gateway: traffic forwarded into {} unchanged, for the server to route (nftables table ip {}), "
                 "IP forwarding on", tun, table_);
}

KernelNat::~KernelNat() {
  const std::string err = nft_.run("delete table ip " + table_ + "\n");
  if (!err.empty()) spdlog::warn("{}: removing table ip {}: {}", what_, table_, err);
  if (!write_forward(forward_before_)) spdlog::warn("{}: cannot restore net.ipv4.ip_forward", what_);
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
