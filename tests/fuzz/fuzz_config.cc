// Config parsing for both roles: any text is accepted or refused with an error naming
// the problem; never a crash, never an exception of another kind.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "control/config.h"

using namespace triglav;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (ctl::Role role : {ctl::Role::Server, ctl::Role::Client}) {
    ctl::Settings s;
    try {
      ctl::parse_config(text, "fuzz", role, s);
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()).empty()) __builtin_trap();
    }
  }
  return 0;
}
