#include "io/udp_socket.h"

#include <fcntl.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace triglav::io {
namespace {
void set_buffer(int fd, int opt_force, int opt, int bytes) {
  // Root may exceed net.core.{r,w}mem_max; otherwise the kernel clamps, which is fine.
  if (setsockopt(fd, SOL_SOCKET, opt_force, &bytes, sizeof bytes) != 0)
    setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}
}  // namespace

// The socket stays blocking: io_uring then waits for readiness itself instead of
// completing sends with EAGAIN. The control path sends with MSG_DONTWAIT.
UdpSocket UdpSocket::open(const Endpoint& local, const std::string& device, SocketBuffers buffers, bool reuse_port,
                          bool v6only) {
  const int fd = socket(local.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error("cannot create UDP socket: " + std::string(std::strerror(errno)));
  UdpSocket s(fd);
  if (local.family() == AF_INET6) {
    const int only = v6only ? 1 : 0;  // else dual-stack when listening on ::
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, buffers.recv);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, buffers.send);
  if (!device.empty() &&
      setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device.c_str(),
                 static_cast<socklen_t>(device.size())) != 0) {
    throw std::runtime_error("cannot bind UDP socket to interface " + device + ": " +
                             std::strerror(errno));
  }
  const int one = 1;
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    throw std::runtime_error("cannot share a UDP port between workers (SO_REUSEPORT): " +
                             std::string(std::strerror(errno)));
  if (::bind(fd, local.sa(), local.len) != 0) {
    throw std::runtime_error("cannot listen on " + local.to_string() + ": " +
                             std::strerror(errno));
  }
  return s;
}

int UdpSocket::route_mtu(const Endpoint& to, const std::string& device, std::uint32_t mark) noexcept {
  const int fd = socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int mtu = 0;
  socklen_t len = sizeof mtu;
  const bool v6 = to.family() == AF_INET6;
  const bool ok =
      (device.empty() ||
       setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), static_cast<socklen_t>(device.size())) == 0) &&
      (mark == 0 || setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0) &&
      connect(fd, to.sa(), to.len) == 0 &&  // a route lookup, nothing sent
      getsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU : IP_MTU, &mtu, &len) == 0;
  ::close(fd);
  return ok ? mtu : 0;
}

UdpSocket UdpSocket::bind(const Endpoint& local, const std::string& device, SocketBuffers buffers, bool v6only) {
  return open(local, device, buffers, false, v6only);
}

std::vector<UdpSocket> UdpSocket::bind_group(const Endpoint& local, unsigned count, const std::string& device,
                                             SocketBuffers buffers, bool v6only) {
  std::vector<UdpSocket> out;
  if (count <= 1) {
    out.push_back(bind(local, device, buffers, v6only));
    return out;
  }
  for (int attempt = 0;; ++attempt) {
    Endpoint at = local;
    // Port 0: the kernel's choice for a plain socket, which no SO_REUSEPORT group of
    // another process holds either (a reuseport socket on port 0 may be given such a
    // group's port, and join it).
    if (local.port() == 0) at = bind(local, device, {0, 0}, v6only).local();
    try {
      // A port that another process holds with SO_REUSEPORT of its own would take our
      // sockets into its group: a plain bind first says whether the port is free.
      bind(at, device, {0, 0}, v6only);
      out.clear();
      for (unsigned i = 0; i < count; ++i) out.push_back(open(at, device, buffers, true, v6only));
      return out;
    } catch (const std::runtime_error&) {
      if (local.port() != 0 || attempt >= 7) throw;  // port 0: taken in between, choose again
    }
  }
}

UdpSocket::~UdpSocket() {
  if (fd_ >= 0) close(fd_);
}

UdpSocket& UdpSocket::operator=(UdpSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Endpoint UdpSocket::local() const {
  Endpoint e;
  e.len = sizeof e.addr;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&e.addr), &e.len);
  return e;
}

bool UdpSocket::send_to(const void* data, std::size_t len, const Endpoint& to) const noexcept {
  return sendto(fd_, data, len, MSG_DONTWAIT, to.sa(), to.len) == static_cast<ssize_t>(len);
}

void UdpSocket::set_mark(std::uint32_t mark) {
  if (setsockopt(fd_, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0)
    throw std::runtime_error(std::string("cannot mark the uplink socket (SO_MARK): ") + std::strerror(errno));
}

void UdpSocket::attach_filter(std::span<const sock_filter> program) {
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.size());
  prog.filter = const_cast<sock_filter*>(program.data());
  if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
    throw std::runtime_error("cannot attach a socket filter: " + std::string(std::strerror(errno)));
}

void UdpSocket::attach_reuseport_program(std::span<const sock_filter> program) {
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.size());
  prog.filter = const_cast<sock_filter*>(program.data());
  if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0)
    throw std::runtime_error("cannot steer the workers' sockets (SO_ATTACH_REUSEPORT_CBPF): " +
                             std::string(std::strerror(errno)));
}

std::uint64_t UdpSocket::kernel_drops() const noexcept {
  std::uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof mem;
  if (fd_ < 0 || getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 || len < sizeof(std::uint32_t) * (SK_MEMINFO_DROPS + 1))
    return 0;
  return mem[SK_MEMINFO_DROPS];
}

}  // namespace triglav::io
