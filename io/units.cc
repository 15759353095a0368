#include "io/units.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace triglav::io {

namespace {

// Splits "12.5ms" into 12.5 and "ms"; the unit is lowercased.
bool split_number(const std::string& s, double& value, std::string& unit) {
  const char* b = s.c_str();
  char* end = nullptr;
  value = std::strtod(b, &end);
  if (end == b || !std::isfinite(value) || value < 0) return false;
  unit.assign(end);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  return true;
}

}  // namespace

bool parse_rate(const std::string& s, double& bps) {
  double v;
  std::string u;
  if (!split_number(s, v, u)) return false;
  if (u == "" || u == "bit" || u == "bps") bps = v;
  else if (u == "kbit") bps = v * 1e3;
  else if (u == "mbit") bps = v * 1e6;
  else if (u == "gbit") bps = v * 1e9;
  else return false;
  return true;
}

bool parse_duration(const std::string& s, std::int64_t& ns) {
  double v;
  std::string u;
  if (!split_number(s, v, u)) return false;
  double scale;
  if (u == "ns") scale = 1;
  else if (u == "us") scale = 1e3;
  else if (u == "ms") scale = 1e6;
  else if (u == "s" || (u.empty() && v == 0)) scale = 1e9;
  else if (u == "m" || u == "min") scale = 60e9;
  else if (u == "h") scale = 3600e9;
  else return false;
  // Beyond what 64-bit nanoseconds hold (about 292 years) is no duration: refused
  // rather than converted, which would be undefined.
  if (!(v * scale < 9.2e18)) return false;
  ns = static_cast<std::int64_t>(v * scale);
  return true;
}

bool parse_percent(const std::string& s, double& p) {
  double v;
  std::string u;
  if (!split_number(s, v, u) || u != "%" || v > 100) return false;
  p = v / 100.0;
  return true;
}

bool parse_size(const std::string& s, std::size_t& bytes) {
  double v;
  std::string u;
  if (!split_number(s, v, u)) return false;
  double scale;
  if (u.empty() || u == "b") scale = 1;
  else if (u == "kb") scale = 1024;
  else if (u == "mb") scale = 1024 * 1024;
  else return false;
  if (!(v * scale < 1.8e19)) return false;  // what a 64-bit size holds
  bytes = static_cast<std::size_t>(v * scale);
  return true;
}

}  // namespace triglav::io
