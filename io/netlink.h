// rtnetlink requests for the interface we own: bring it up with an MTU, add IPv4
// addresses and routes, delete routes. Built on libmnl. Control thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "io/endpoint.h"

struct mnl_socket;

namespace triglav::io {

// A policy routing rule (ip rule): traffic matching every set selector looks up `table`.
struct Rule {
  int family = 2;           // AF_INET, or AF_INET6 (10)
  unsigned priority = 0;
  unsigned table = 0;
  std::uint32_t fwmark = 0;  // matched with mask 0xffffffff when mark_set
  bool mark_set = false;
  bool invert = false;       // "not": the selectors must not match
  std::uint8_t dst[16] = {}; // network byte order (4 bytes used for IPv4)
  int dst_len = -1;          // < 0: any destination
};

class Netlink {
 public:
  // Throws std::runtime_error if the netlink socket cannot be opened.
  Netlink();
  ~Netlink();
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;

  // Each returns an empty string on success, else a one-line reason.
  std::string link_up(int ifindex, int mtu);
  std::string add_address(int ifindex, const Ipv4Prefix& addr);
  // An IPv6 address (16 bytes) with prefix length len, without duplicate address
  // detection (a point-to-point tunnel has no neighbours to ask).
  std::string add_address6(int ifindex, const std::uint8_t addr[16], int len);
  // Routes through ifindex in `table` (254 = main).
  std::string add_route(int ifindex, const Ipv4Prefix& dst, unsigned table = 254);
  std::string del_route(int ifindex, const Ipv4Prefix& dst, unsigned table = 254);
  std::string add_route6(int ifindex, const Ipv6Prefix& dst, unsigned table = 254);
  std::string del_route6(int ifindex, const Ipv6Prefix& dst, unsigned table = 254);
  // Policy rules "from all iif IFNAME lookup TABLE" at a priority (IPv4).
  std::string add_rule_iif(const std::string& iif, unsigned table, unsigned priority);
  std::string del_rule_iif(const std::string& iif, unsigned table, unsigned priority);
  std::string add_rule(const Rule& r);
  // Deletes one rule of this family and priority, whatever its selectors.
  std::string del_rule_at(int family, unsigned priority);
  // The default route of `family` (AF_INET, AF_INET6) through ifindex in `table`, and its
  // removal (ifindex 0: whichever device).
  std::string add_default_route(int family, int ifindex, unsigned table);
  std::string del_default_route(int family, int ifindex, unsigned table);

 private:
  std::string request(void* nlh);
  mnl_socket* nl_ = nullptr;
  unsigned port_id_ = 0;
  unsigned seq_ = 1;
};

// Kernel link events (RTNLGRP_LINK): interfaces going up or down, appearing or going
// away. Non-blocking; the owner polls fd() and calls drain().
class LinkMonitor {
 public:
  LinkMonitor();  // throws std::runtime_error
  ~LinkMonitor();
  LinkMonitor(const LinkMonitor&) = delete;
  LinkMonitor& operator=(const LinkMonitor&) = delete;

  int fd() const noexcept;
  // Calls cb(ifindex, up) for every pending event; up = administratively up with carrier.
  void drain(const std::function<void(int ifindex, bool up)>& cb);

 private:
  mnl_socket* nl_ = nullptr;
};

}  // namespace triglav::io
