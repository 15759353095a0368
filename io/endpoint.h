// Socket addresses and IPv4 prefixes: parsing ("IP:PORT", "[IPv6]:PORT", "A.B.C.D/N"),
// formatting and comparison. No I/O.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace triglav::io {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;

  static Endpoint from_ipv4(std::uint32_t addr_be, std::uint16_t port) noexcept;
  static Endpoint from_ipv6(const std::uint8_t addr[16], std::uint16_t port) noexcept;
  static Endpoint from_sockaddr(const sockaddr* sa, socklen_t len) noexcept;
  static Endpoint loopback(int family, std::uint16_t port) noexcept;  // 127.0.0.1 or ::1

  int family() const noexcept { return addr.ss_family; }
  std::uint16_t port() const noexcept;
  bool is_unspecified() const noexcept;  // 0.0.0.0 or ::
  const sockaddr* sa() const noexcept { return reinterpret_cast<const sockaddr*>(&addr); }
  std::string to_string() const;

  bool operator==(const Endpoint& o) const noexcept;
};

// What per-source limits (handshake rates, cookie replies, TCP connections) count as one
// source: an IPv4 address whole, also written IPv4-mapped (::ffff:a.b.c.d, as a
// dual-stack socket sees it), and an IPv6 address by its /64, which one host or site
// picks its addresses from freely. As a 64-bit number, distinct for distinct sources:
// the /64 itself, or for IPv4 (and ::/64) a value in ff00::/8, a prefix no source has.
std::uint64_t source_id(const Endpoint& e) noexcept;

// "1.2.3.4:7443" or "[2001:db8::1]:7443". nullopt on any error; error names the problem.
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& error);

struct Ipv4Prefix {
  std::uint32_t addr_be = 0;  // network byte order
  int len = 32;

  std::string to_string() const;
  std::uint32_t network_be() const noexcept;
  std::uint32_t mask_be() const noexcept;  // len leading ones, network byte order
};

// "10.0.85.2/24" or "10.0.85.2" (then default_len). nullopt with error on failure.
std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text, int default_len,
                                            std::string& error);

std::string ipv4_to_string(std::uint32_t addr_be);

struct Ipv6Prefix {
  std::array<std::uint8_t, 16> addr{};  // the network (host bits zero)
  int len = 128;
  std::string to_string() const;
};

// "fd12:3456::/48" or an address (a /128). The host bits are cleared. nullopt with error.
std::optional<Ipv6Prefix> parse_ipv6_prefix(std::string_view text, std::string& error);

}  // namespace triglav::io
