#include "dataplane/generator.h"

#include <algorithm>
#include <cstring>

namespace triglav::dp {

std::size_t write_generated(std::uint8_t* p, std::size_t room, const Generator& g, unsigned n) noexcept {
  const std::size_t len = std::clamp<std::size_t>(g.len, 28, std::min<std::size_t>(room, 65535));
  const unsigned stream = g.streams > 0 ? n % g.streams : 0;
  std::memset(p, 0, len);
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(len >> 8);
  p[3] = static_cast<std::uint8_t>(len);
  p[4] = static_cast<std::uint8_t>(n >> 8);  // identification
  p[5] = static_cast<std::uint8_t>(n);
  p[6] = 0x40;  // don't fragment
  p[8] = 64;
  p[9] = 17;
  std::memcpy(p + 12, &g.src_be, 4);
  std::memcpy(p + 16, &g.dst_be, 4);
  std::uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += std::uint32_t{p[i]} << 8 | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const auto csum = static_cast<std::uint16_t>(~sum);
  p[10] = static_cast<std::uint8_t>(csum >> 8);
  p[11] = static_cast<std::uint8_t>(csum);
  const unsigned sport = 40000 + stream, dport = 5201;
  const std::size_t udp_len = len - 20;
  p[20] = static_cast<std::uint8_t>(sport >> 8);
  p[21] = static_cast<std::uint8_t>(sport);
  p[22] = static_cast<std::uint8_t>(dport >> 8);
  p[23] = static_cast<std::uint8_t>(dport);
  p[24] = static_cast<std::uint8_t>(udp_len >> 8);
  p[25] = static_cast<std::uint8_t>(udp_len);  // checksum 0: none (IPv4 allows it)
  return len;
}

}  // namespace triglav::dp
