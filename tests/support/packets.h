// Inner packets as the tests and benchmarks build them: an IPv4 header (no options)
// written in front of whatever transport header and payload a test needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace triglav::test {

struct Ipv4 {
  std::uint32_t src_be = 0, dst_be = 0;  // network order
  std::uint8_t proto = 0;                // 6 TCP, 17 UDP
  std::uint8_t ttl = 64;
  std::uint16_t id = 0;
  bool df = false;  // don't fragment
};

// Writes the 20-byte header of a packet `total` bytes long at p: version 4, IHL 5, TOS
// 0, the length, the identification, DF if asked, fragment offset 0, TTL, protocol,
// checksum 0 (a test that needs it computes it: dataplane/offload.h) and the addresses.
inline void write_ipv4(std::uint8_t* p, std::size_t total, const Ipv4& h) {
  p[0] = 0x45;
  p[1] = 0;
  p[2] = static_cast<std::uint8_t>(total >> 8);
  p[3] = static_cast<std::uint8_t>(total);
  p[4] = static_cast<std::uint8_t>(h.id >> 8);
  p[5] = static_cast<std::uint8_t>(h.id);
  p[6] = h.df ? 0x40 : 0;
  p[7] = 0;
  p[8] = h.ttl;
  p[9] = h.proto;
  p[10] = p[11] = 0;
  std::memcpy(p + 12, &h.src_be, 4);
  std::memcpy(p + 16, &h.dst_be, 4);
}

// The addresses of the tests' tunnel: client 10.0.85.2, server 10.0.85.1.
inline constexpr std::uint32_t kClientIp = 0x0255000a;  // network order bytes
inline constexpr std::uint32_t kServerIp = 0x0155000a;

}  // namespace triglav::test
