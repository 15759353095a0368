// --nat-outbound (server): clients reach the server's networks and the internet through
// it. IP forwarding is switched on and the tunnel prefix is masqueraded on every other
// interface, in an nftables table of our own (ip triglav_TUN); both are undone on exit,
// and a table left by a crash is replaced at the next start.
#pragma once

#include <string>

#include "io/endpoint.h"
#include "io/nftables.h"

namespace triglav::ctl {

class OutboundNat {
 public:
  // Throws std::runtime_error with a one-line reason (after undoing what it did).
  OutboundNat(const std::string& tun, const io::Ipv4Prefix& prefix);
  ~OutboundNat();
  OutboundNat(const OutboundNat&) = delete;
  OutboundNat& operator=(const OutboundNat&) = delete;

  const std::string& table() const noexcept { return table_; }

 private:
  io::Nftables nft_;
  std::string table_;
  std::string forward_before_;  // net.ipv4.ip_forward as we found it
};

}  // namespace triglav::ctl
