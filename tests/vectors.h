// Locating ../shared/vectors for known-answer tests. Tests that need a vector file
// call GTEST_SKIP() with a visible message when it is absent on a developer's machine;
// in CI (CI set to anything but "false" or "0") a missing file fails the test.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace triglav::test {

inline std::string vectors_dir() {
  const char* env = std::getenv("TRIGLAV_VECTORS");
  return env != nullptr ? env : "";
}

// Whole file, or nullopt if the vectors folder or the file is missing.
inline std::optional<std::string> read_vector_file(const std::string& name) {
  const std::string dir = vectors_dir();
  if (dir.empty()) return std::nullopt;
  std::ifstream f(dir + "/" + name, std::ios::binary);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string(ci) != "false" && std::string(ci) != "0";
}

inline std::vector<std::uint8_t> unhex(const std::string& h) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

}  // namespace triglav::test

#define TRIGLAV_REQUIRE_VECTOR(var, name)                                                 \
  auto var = ::triglav::test::read_vector_file(name);                                     \
  if (!var && ::triglav::test::in_ci())                                                   \
    GTEST_FAIL() << "test vector " << name << " not found in '"                           \
                 << ::triglav::test::vectors_dir() << "' (CI needs ../shared/vectors)";   \
  if (!var) GTEST_SKIP() << "SKIPPED: test vector " << name << " not found in '"         \
                         << ::triglav::test::vectors_dir() << "' (../shared/vectors absent)"
