// rtnetlink requests for the interface we own: bring it up with an MTU, add IPv4
// addresses and routes, delete routes. Built on libmnl. Control thread only.
#pragma once

#include <string>

#include "io/endpoint.h"

struct mnl_socket;

namespace triglav::io {

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
  std::string add_route(int ifindex, const Ipv4Prefix& dst);
  std::string del_route(int ifindex, const Ipv4Prefix& dst);

 private:
  std::string request(void* nlh);
  mnl_socket* nl_ = nullptr;
  unsigned port_id_ = 0;
  unsigned seq_ = 1;
};

}  // namespace triglav::io
