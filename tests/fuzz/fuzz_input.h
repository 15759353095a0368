// A fuzz input read as a script: values of any trivial type taken in turn, zero-filled
// once the bytes run out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace triglav::fuzz {

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  template <typename T>
  T take() {
    T v{};
    const std::size_t k = n < sizeof v ? n : sizeof v;
    std::memcpy(&v, p, k);
    p += k;
    n -= k;
    return v;
  }
};

}  // namespace triglav::fuzz
