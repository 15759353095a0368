// A UDP socket bound to a local endpoint, with large kernel buffers.
#pragma once

#include <cstdint>
#include <string>

#include "io/endpoint.h"

namespace triglav::io {

class UdpSocket {
 public:
  UdpSocket() = default;
  // Binds to local (port 0 = any). device, if not empty, pins the socket to that
  // interface (SO_BINDTODEVICE). Throws std::runtime_error with a one-line reason.
  static UdpSocket bind(const Endpoint& local, const std::string& device = {});
  ~UdpSocket();
  UdpSocket(UdpSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UdpSocket& operator=(UdpSocket&& o) noexcept;

  int fd() const noexcept { return fd_; }
  // Marks every packet of the socket (SO_MARK), for policy routing. Throws on failure.
  void set_mark(std::uint32_t mark);
  Endpoint local() const;
  // Blocking-free send of one datagram (control path only). Returns false on error.
  bool send_to(const void* data, std::size_t len, const Endpoint& to) const noexcept;

 private:
  explicit UdpSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace triglav::io
