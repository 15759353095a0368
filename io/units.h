// Parsers for human-written quantities in config and scenario files. Each returns false
// on a malformed or negative value; units are case-insensitive and may follow a space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace triglav::io {

bool parse_rate(const std::string& s, double& bps);           // "20mbit", "1gbit", "500kbit", "0"
bool parse_duration(const std::string& s, std::int64_t& ns);  // "60ms", "1.5s", "5m", "2h", "250us", "0"; false beyond ~292 years
bool parse_percent(const std::string& s, double& p);          // "2%", "0.5%" -> 0.02, 0.005
bool parse_size(const std::string& s, std::size_t& bytes);    // "64kb", "1mb", "1500"

}  // namespace triglav::io
