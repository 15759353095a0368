// --dns: points the resolver (/etc/resolv.conf) at the given servers for as long as the
// client runs, and puts the previous file back on exit. The file is rewritten in place
// (so a bind mount, as `ip netns exec` makes, or a symlink keeps working), and a copy of
// the previous content waits in /run/triglav, so that the next start restores it after
// a crash. The file stays open, so that it can be restored after root was dropped
// (--user).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/endpoint.h"

namespace triglav::ctl {

class ResolverOverride {
 public:
  // Throws std::runtime_error with a one-line reason (nothing is changed then). An
  // address 0 among the servers stands for the server's tunnel address, known after the
  // first handshake: the file is then left alone until point_at.
  ResolverOverride(const std::vector<io::Ipv4Prefix>& servers, const std::string& tun,
                   std::string path = "/etc/resolv.conf");
  // Whether the file waits for the server's tunnel address.
  bool waiting() const noexcept { return ours_.empty(); }
  // Writes the file with the servers, an address 0 replaced by `server_be`. False (and
  // an error logged) when it cannot; works after root was dropped.
  bool point_at(std::uint32_t server_be);
  ~ResolverOverride();
  ResolverOverride(const ResolverOverride&) = delete;
  ResolverOverride& operator=(const ResolverOverride&) = delete;

  // Restores a previous run's file if that run died with the override in place. Returns
  // true if it did.
  static bool restore_leftover(const std::string& tun, const std::string& path = "/etc/resolv.conf");

 private:
  std::string path_;
  std::string tun_;
  std::vector<io::Ipv4Prefix> servers_;
  std::string backup_;    // file in /run/triglav with the previous content
  std::string previous_;  // the content we replaced
  std::string ours_;      // what we wrote
  int fd_ = -1;           // the file, open for restoring it
};

}  // namespace triglav::ctl
