#include "io/conntrack.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace triglav::io {
namespace {

struct Count {
  std::uint32_t mark;
  std::uint64_t n = 0;
};

int on_attr(const nlattr* attr, void* data) {
  if (mnl_attr_get_type(attr) == CTA_MARK && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
    *static_cast<std::optional<std::uint32_t>*>(data) = ntohl(mnl_attr_get_u32(attr));
  return MNL_CB_OK;
}

int on_entry(const nlmsghdr* nlh, void* data) {
  auto* c = static_cast<Count*>(data);
  std::optional<std::uint32_t> mark;
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), on_attr, &mark) >= 0 && mark == c->mark) ++c->n;
  return MNL_CB_OK;
}

struct SocketCloser {
  void operator()(mnl_socket* s) const noexcept { mnl_socket_close(s); }
};

}  // namespace

std::optional<std::uint64_t> count_conntrack_marked(std::uint32_t mark, std::string& err) {
  std::unique_ptr<mnl_socket, SocketCloser> nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl) {
    err = std::string("conntrack: netlink socket: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    err = std::string("conntrack: netlink bind: ") + std::strerror(errno);
    return std::nullopt;
  }
  const timeval tv{1, 0};  // a kernel that never answers must not hang the control thread
  setsockopt(mnl_socket_get_fd(nl.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  const unsigned seq = 1;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;  // IPv4 and IPv6 entries
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  mnl_attr_put_u32(nlh, CTA_MARK, htonl(mark));  // the kernel filters the dump by mark
  mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(0xffffffffu));
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0) {
    err = std::string("conntrack: netlink send: ") + std::strerror(errno);
    return std::nullopt;
  }
  const unsigned port = mnl_socket_get_portid(nl.get());
  Count c{mark};
  // Bounded: a dump ends with NLMSG_DONE; a million reads would be a broken kernel.
  for (int i = 0; i < 1'000'000; ++i) {
    const ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) {
      err = std::string("conntrack: netlink receive: ") + std::strerror(errno);
      return std::nullopt;
    }
    const int r = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, port, on_entry, &c);
    if (r == MNL_CB_STOP) return c.n;
    if (r == MNL_CB_ERROR) {
      err = std::string("conntrack: ") + std::strerror(errno) +
            (errno == EOPNOTSUPP || errno == ENOENT ? " (is nf_conntrack_netlink loaded?)" : "");
      return std::nullopt;
    }
  }
  err = "conntrack: the dump did not end";
  return std::nullopt;
}

}  // namespace triglav::io
