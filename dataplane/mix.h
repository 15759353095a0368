// A 64-bit mixing function (the splitmix64 finaliser): spreads every input bit over the
// output, for flow hashes and rendezvous hashing.
#pragma once

#include <cstdint>

namespace triglav::dp {

constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace triglav::dp
