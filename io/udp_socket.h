// A UDP socket bound to a local endpoint, with large kernel buffers.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/endpoint.h"

namespace triglav::io {

// A socket's kernel buffers, in bytes (SO_RCVBUF, SO_SNDBUF).
struct SocketBuffers {
  int recv = 8 << 20;
  int send = 8 << 20;
};

class UdpSocket {
 public:
  UdpSocket() = default;
  // Binds to local (port 0 = any). device, if not empty, pins the socket to that
  // interface (SO_BINDTODEVICE). Throws std::runtime_error with a one-line reason.
  // buffers: SO_RCVBUF and SO_SNDBUF (beyond net.core.*mem_max for root). An IPv6
  // socket takes IPv4 too (on ::, dual-stack) unless v6only, for a server that listens on
  // an IPv4 address of the same port as well.
  static UdpSocket bind(const Endpoint& local, const std::string& device = {}, SocketBuffers buffers = {},
                        bool v6only = false);
  // `count` sockets on one local endpoint (SO_REUSEPORT), one per worker: the kernel
  // gives each remote address and port to one of them, always the same one. Like bind
  // (just one socket) when count is 1; a port already in use is refused all the same.
  static std::vector<UdpSocket> bind_group(const Endpoint& local, unsigned count, const std::string& device = {},
                                           SocketBuffers buffers = {}, bool v6only = false);
  // The path MTU the kernel knows to `to` through `device` (empty: any) with SO_MARK
  // `mark` (0: none): the route's MTU, lowered by any ICMP "fragmentation needed" (or
  // "packet too big") heard since. 0 when it cannot tell.
  static int route_mtu(const Endpoint& to, const std::string& device, std::uint32_t mark) noexcept;
  ~UdpSocket();
  UdpSocket(UdpSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UdpSocket& operator=(UdpSocket&& o) noexcept;

  int fd() const noexcept { return fd_; }
  // Marks every packet of the socket (SO_MARK), for policy routing. Throws on failure.
  void set_mark(std::uint32_t mark);
  // A classic BPF program the kernel runs on each datagram before queueing it
  // (SO_ATTACH_FILTER; offset 0 is the UDP header). Throws std::runtime_error.
  void attach_filter(std::span<const sock_filter> program);
  // The classic BPF program that picks the socket of its SO_REUSEPORT group for each
  // datagram (SO_ATTACH_REUSEPORT_CBPF; offset 0 is the UDP payload; an index past the
  // group leaves it to the kernel's hash). One socket of the group takes it for all.
  void attach_reuseport_program(std::span<const sock_filter> program);
  // Datagrams the kernel dropped for this socket (the filter, or a full receive
  // queue) since it was opened.
  std::uint64_t kernel_drops() const noexcept;
  Endpoint local() const;
  // Blocking-free send of one datagram (control path only). Returns false on error.
  bool send_to(const void* data, std::size_t len, const Endpoint& to) const noexcept;

 private:
  explicit UdpSocket(int fd) : fd_(fd) {}
  static UdpSocket open(const Endpoint& local, const std::string& device, SocketBuffers buffers, bool reuse_port,
                        bool v6only);
  int fd_ = -1;
};

}  // namespace triglav::io
