#include "control/nat_outbound.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <stdexcept>

namespace triglav::ctl {
namespace {

constexpr const char* kForward = "/proc/sys/net/ipv4/ip_forward";

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

}  // namespace

OutboundNat::OutboundNat(const std::string& tun, const io::Ipv4Prefix& prefix)
    : table_("triglav_" + tun), forward_before_(read_forward()) {
  const io::Ipv4Prefix net{prefix.network_be(), prefix.len};
  // "add" then "delete" removes a table left by a crash whether or not there is one.
  const std::string script = "add table ip " + table_ + "\ndelete table ip " + table_ + "\n" +
                             "table ip " + table_ + " {\n"
                             "  chain postrouting {\n"
                             "    type nat hook postrouting priority srcnat; policy accept;\n"
                             "    ip saddr " + net.to_string() + " oifname != \"" + tun + "\" masquerade\n"
                             "  }\n"
                             "}\n";
  const std::string err = nft_.run(script);
  if (!err.empty()) throw std::runtime_error("--nat-outbound: nftables: " + err);
  if (!write_forward("1")) {
    nft_.run("delete table ip " + table_ + "\n");
    throw std::runtime_error("--nat-outbound: cannot enable net.ipv4.ip_forward");
  }
  spdlog::info("outbound NAT: {} masqueraded (nftables table ip {}), IP forwarding on", net.to_string(), table_);
}

OutboundNat::~OutboundNat() {
  const std::string err = nft_.run("delete table ip " + table_ + "\n");
  if (!err.empty()) spdlog::warn("outbound NAT: removing table ip {}: {}", table_, err);
  if (!write_forward(forward_before_)) spdlog::warn("outbound NAT: cannot restore net.ipv4.ip_forward");
}

}  // namespace triglav::ctl
