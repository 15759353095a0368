// The control socket's and the metrics endpoint's requests (control/status_server.h):
// any bytes give no answer yet (incomplete) or one answer of the right form, never an
// exception. A control-socket answer is one JSON line; an HTTP one a status line and
// headers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/status_server.h"

using namespace triglav;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto status = [] {
    ctl::Status s;
    s.role = "server";
    s.state = "serving";
    return s;
  };
  for (bool http : {false, true}) {
    const auto a = ctl::status_answer(http, in, status);
    if (!a) {
      // Incomplete: only while no end of request is there.
      if (!http && in.find('\n') != std::string_view::npos) __builtin_trap();
      if (http && (in.find("\r\n\r\n") != std::string_view::npos || in.find("\n\n") != std::string_view::npos))
        __builtin_trap();
      continue;
    }
    if (http) {
      if (a->rfind("HTTP/1.1 ", 0) != 0 || a->find("\r\n\r\n") == std::string::npos) __builtin_trap();
    } else {
      if (a->empty() || a->back() != '\n' || a->find('\n') != a->size() - 1) __builtin_trap();
      if (nlohmann::json::parse(*a, nullptr, false).is_discarded()) __builtin_trap();
    }
  }
  return 0;
}
