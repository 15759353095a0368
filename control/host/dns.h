// --dns: points the resolver (/etc/resolv.conf) at the given servers for as long as the
// client runs, and puts the previous file back on exit. The file is rewritten in place
// (so a bind mount, as `ip netns exec` makes, or a symlink keeps working), and a copy of
// the previous content waits in /run/triglav, so that the next start restores it after
// a crash. The file stays open, so that it can be restored after root was dropped
// (--user).
#pragma once

#include <string>
#include <vector>

#include "io/endpoint.h"

namespace triglav::ctl {

class ResolverOverride {
 public:
  // Throws std::runtime_error with a one-line reason (nothing is changed then).
  ResolverOverride(const std::vector<io::Ipv4Prefix>& servers, const std::string& tun,
                   std::string path = "/etc/resolv.conf");
  ~ResolverOverride();
  ResolverOverride(const ResolverOverride&) = delete;
  ResolverOverride& operator=(const ResolverOverride&) = delete;

  // Restores a previous run's file if that run died with the override in place. Returns
  // true if it did.
  static bool restore_leftover(const std::string& tun, const std::string& path = "/etc/resolv.conf");

 private:
  std::string path_;
  std::string backup_;    // file in /run/triglav with the previous content
  std::string previous_;  // the content we replaced
  std::string ours_;      // what we wrote
  int fd_ = -1;           // the file, open for restoring it
};

}  // namespace triglav::ctl
