// Scenario files for triglav-linkem (TOML). A scenario names links; each link has a
// schedule of segments, each starting at `at` and changing some parameters (the rest are
// inherited from the segment before). See docs/LINKEM.md for the format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/linkem/link_model.h"

namespace triglav::linkem {

struct Segment {
  std::int64_t at_ns = 0;
  bool ramp = false;  // numeric values move linearly from the previous segment's
  LinkParams up;      // A -> B (client side towards server side)
  LinkParams down;    // B -> A
};

struct LinkSchedule {
  std::string name;
  std::vector<Segment> segments;  // sorted by at_ns, the first at 0

  // The parameters in force at t (ns since the start) for one direction.
  LinkParams at(std::int64_t t_ns, bool up) const;
};

struct Scenario {
  std::string name;
  std::string about;
  std::int64_t duration_ns = 0;
  std::vector<LinkSchedule> links;

  const LinkSchedule* link(const std::string& name) const;
};

// Throws std::runtime_error naming the file, the line and the key at fault.
Scenario load_scenario(const std::string& path);
Scenario parse_scenario(const std::string& text, const std::string& source_name);

}  // namespace triglav::linkem
