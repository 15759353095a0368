#include "io/netlink.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace triglav::io {
namespace {
constexpr std::size_t kMsgBuf = 8192;  // MNL_SOCKET_BUFFER_SIZE is not a constant
}  // namespace

Netlink::Netlink() {
  nl_ = mnl_socket_open(NETLINK_ROUTE);
  if (nl_ == nullptr || mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int e = errno;
    if (nl_ != nullptr) mnl_socket_close(nl_);
    throw std::runtime_error("cannot open rtnetlink socket: " + std::string(std::strerror(e)));
  }
  port_id_ = mnl_socket_get_portid(nl_);
}

Netlink::~Netlink() { mnl_socket_close(nl_); }

std::string Netlink::request(void* p) {
  auto* nlh = static_cast<nlmsghdr*>(p);
  nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq_++;
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return std::strerror(errno);
  std::vector<char> buf(kMsgBuf);
  const ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
  if (n < 0) return std::strerror(errno);
  if (mnl_cb_run(buf.data(), static_cast<size_t>(n), nlh->nlmsg_seq, port_id_, nullptr, nullptr) < 0)
    return std::strerror(errno);
  return {};
}

std::string Netlink::link_up(int ifindex, int mtu) {
  char buf[kMsgBuf];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWLINK;
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  mnl_attr_put_u32(nlh, IFLA_MTU, static_cast<std::uint32_t>(mtu));
  return request(nlh);
}

namespace {
// An RTM_NEWADDR for one address (bytes in network order) on ifindex: the attributes
// are the caller's.
nlmsghdr* new_address_msg(char* buf, int family, int ifindex, int prefix_len, const void* addr, std::size_t addr_len,
                          unsigned char flags) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<unsigned char>(family);
  ifa->ifa_prefixlen = static_cast<unsigned char>(prefix_len);
  ifa->ifa_flags = flags;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(ifindex);
  mnl_attr_put(nlh, IFA_LOCAL, addr_len, addr);
  mnl_attr_put(nlh, IFA_ADDRESS, addr_len, addr);
  return nlh;
}
}  // namespace

std::string Netlink::add_address(int ifindex, const Ipv4Prefix& addr) {
  char buf[kMsgBuf];
  return request(new_address_msg(buf, AF_INET, ifindex, addr.len, &addr.addr_be, 4, 0));
}

std::string Netlink::add_address6(int ifindex, const std::uint8_t addr[16], int len) {
  char buf[kMsgBuf];
  return request(new_address_msg(buf, AF_INET6, ifindex, len, addr, 16, IFA_F_NODAD));
}

namespace {
// dst: the network, 4 or 16 bytes by family (len 0: a default route). ifindex 0: any
// device (deleting).
nlmsghdr* route_msg(char* buf, int type, int ifindex, int family, const void* dst, int len, unsigned table) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<std::uint16_t>(type);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<unsigned char>(family);
  rtm->rtm_dst_len = static_cast<unsigned char>(len);
  rtm->rtm_table = table < 256 ? static_cast<unsigned char>(table) : static_cast<unsigned char>(RT_TABLE_UNSPEC);
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  if (len > 0) mnl_attr_put(nlh, RTA_DST, family == AF_INET6 ? 16 : 4, dst);
  if (ifindex > 0) mnl_attr_put_u32(nlh, RTA_OIF, static_cast<std::uint32_t>(ifindex));
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
  return nlh;
}

nlmsghdr* rule_msg(char* buf, int type, const std::string& iif, unsigned table, unsigned priority) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<std::uint16_t>(type);
  auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
  frh->family = AF_INET;
  frh->action = FR_ACT_TO_TBL;
  frh->table = table < 256 ? static_cast<unsigned char>(table) : static_cast<unsigned char>(RT_TABLE_UNSPEC);
  mnl_attr_put_strz(nlh, FRA_IIFNAME, iif.c_str());
  mnl_attr_put_u32(nlh, FRA_TABLE, table);
  mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
  return nlh;
}
}  // namespace

std::string Netlink::add_route(int ifindex, const Ipv4Prefix& dst, unsigned table) {
  char buf[kMsgBuf];
  const std::uint32_t net = dst.network_be();
  nlmsghdr* nlh = route_msg(buf, RTM_NEWROUTE, ifindex, AF_INET, &net, dst.len, table);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  return request(nlh);
}

std::string Netlink::del_route(int ifindex, const Ipv4Prefix& dst, unsigned table) {
  char buf[kMsgBuf];
  const std::uint32_t net = dst.network_be();
  return request(route_msg(buf, RTM_DELROUTE, ifindex, AF_INET, &net, dst.len, table));
}

std::string Netlink::add_route6(int ifindex, const Ipv6Prefix& dst, unsigned table) {
  char buf[kMsgBuf];
  nlmsghdr* nlh = route_msg(buf, RTM_NEWROUTE, ifindex, AF_INET6, dst.addr.data(), dst.len, table);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  return request(nlh);
}

std::string Netlink::del_route6(int ifindex, const Ipv6Prefix& dst, unsigned table) {
  char buf[kMsgBuf];
  return request(route_msg(buf, RTM_DELROUTE, ifindex, AF_INET6, dst.addr.data(), dst.len, table));
}

namespace {
nlmsghdr* rule_header(char* buf, int type, int family, unsigned priority) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<std::uint16_t>(type);
  auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
  frh->family = static_cast<unsigned char>(family);
  mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
  return nlh;
}

nlmsghdr* default_route_msg(char* buf, int type, int family, int ifindex, unsigned table) {
  return route_msg(buf, type, ifindex, family, nullptr, 0, table);
}
}  // namespace

std::string Netlink::add_rule(const Rule& r) {
  char buf[kMsgBuf];
  nlmsghdr* nlh = rule_header(buf, RTM_NEWRULE, r.family, r.priority);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_get_payload(nlh));
  frh->action = FR_ACT_TO_TBL;
  frh->table = r.table < 256 ? static_cast<unsigned char>(r.table) : static_cast<unsigned char>(RT_TABLE_UNSPEC);
  if (r.invert) frh->flags |= FIB_RULE_INVERT;
  mnl_attr_put_u32(nlh, FRA_TABLE, r.table);
  if (r.mark_set) {
    mnl_attr_put_u32(nlh, FRA_FWMARK, r.fwmark);
    mnl_attr_put_u32(nlh, FRA_FWMASK, 0xffffffffu);
  }
  if (r.dst_len >= 0) {
    frh->dst_len = static_cast<unsigned char>(r.dst_len);
    mnl_attr_put(nlh, FRA_DST, r.family == AF_INET6 ? 16 : 4, r.dst);
  }
  return request(nlh);
}

std::string Netlink::del_rule_at(int family, unsigned priority) {
  char buf[kMsgBuf];
  return request(rule_header(buf, RTM_DELRULE, family, priority));
}

std::string Netlink::add_default_route(int family, int ifindex, unsigned table) {
  char buf[kMsgBuf];
  nlmsghdr* nlh = default_route_msg(buf, RTM_NEWROUTE, family, ifindex, table);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  return request(nlh);
}

std::string Netlink::del_default_route(int family, int ifindex, unsigned table) {
  char buf[kMsgBuf];
  return request(default_route_msg(buf, RTM_DELROUTE, family, ifindex, table));
}

std::string Netlink::add_rule_iif(const std::string& iif, unsigned table, unsigned priority) {
  char buf[kMsgBuf];
  nlmsghdr* nlh = rule_msg(buf, RTM_NEWRULE, iif, table, priority);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  return request(nlh);
}

std::string Netlink::del_rule_iif(const std::string& iif, unsigned table, unsigned priority) {
  char buf[kMsgBuf];
  return request(rule_msg(buf, RTM_DELRULE, iif, table, priority));
}

LinkMonitor::LinkMonitor() {
  nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (nl_ == nullptr || mnl_socket_bind(nl_, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
    const int e = errno;
    if (nl_ != nullptr) mnl_socket_close(nl_);
    throw std::runtime_error("cannot watch link events: " + std::string(std::strerror(e)));
  }
}

LinkMonitor::~LinkMonitor() { mnl_socket_close(nl_); }

int LinkMonitor::fd() const noexcept { return mnl_socket_get_fd(nl_); }

void LinkMonitor::drain(const std::function<void(int, bool)>& cb) {
  std::vector<char> buf(kMsgBuf * 4);
  for (int round = 0; round < 64; ++round) {
    const ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n <= 0) return;  // EAGAIN: drained (ENOBUFS: events were lost; the next ones still come)
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) continue;
      const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
      const bool up = nlh->nlmsg_type == RTM_NEWLINK && (ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_LOWER_UP);
      cb(ifi->ifi_index, up);
    }
  }
}

}  // namespace triglav::io
