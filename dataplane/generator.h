#pragma once

#include <cstddef>
#include <cstdint>

namespace triglav::dp {

// Synthetic traffic a worker sends to a group (benchmark sessions): `streams` UDP flows
// of `len`-byte IPv4 packets from src to dst (tunnel addresses, network order).
struct Generator {
  unsigned streams = 0;  // 0: none
  std::uint32_t src_be = 0, dst_be = 0;
  std::uint16_t len = 0;
};

// Writes packet number `n` of a generator at p (room bytes available): an IPv4 UDP
// packet of g.len bytes (at least its 28 bytes of headers, at most room) of stream
// n mod g.streams (source port 40000 + stream, destination port 5201), with a zeroed
// payload (the buffer may hold another packet's bytes). Returns its length.
std::size_t write_generated(std::uint8_t* p, std::size_t room, const Generator& g, unsigned n) noexcept;

}  // namespace triglav::dp
