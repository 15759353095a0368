// NAT in the kernel (nftables rules over connection tracking), in a table of our own
// (inet triglav_TUN) that is removed on exit and replaced at the next start after a crash.
//   Outbound (server, --nat-outbound): the clients' packets from the tunnel prefixes (the
//     IPv4 pool and, when the tunnel has one, the IPv6 /64) that the server forwards to
//     its other interfaces are masqueraded, so clients reach the server's networks and
//     the internet over both families.
//   Gateway (client, --gateway): packets the client forwards into the TUN (from a LAN
//     behind it) are masqueraded to its tunnel address, so a whole LAN is bonded.
//   Routed (client, --gateway --no-gateway-nat): the same without NAT, for a server that
//     routes the LAN's prefix to this client (its client_routes): only forwarding and
//     the MSS clamp.
// In every case IPv4 forwarding is switched on (and IPv6 forwarding for an Outbound with an
// IPv6 prefix; each put back on exit), the connections we NAT
// carry ct mark kNatMark (counted for triglav_nat_active_entries), TCP and UDP get the
// configured idle timeouts and source ports, and TCP SYNs through the TUN have their MSS
// clamped to the route's MTU.
//
// Why the kernel rather than a NAT table in the workers: conntrack already tracks TCP
// state, translates the ICMP errors that quote a packet, handles fragments and runs at
// the forwarding path's speed; the workers stay free of per-flow NAT state.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/endpoint.h"
#include "io/nftables.h"

namespace triglav::ctl {

struct NatSettings {               // [nat]
  int tcp_timeout_s = 7440;        // idle established TCP mapping (RFC 5382: at least 2 h 4 min)
  int udp_timeout_s = 300;         // idle UDP mapping (RFC 4787: at least 2 min, 5 min advised);
                                   // one that saw a single exchange: at most 30 s
  int port_min = 32768, port_max = 61000;  // source ports of TCP and UDP mappings
};

inline constexpr std::uint32_t kNatMark = 0x7467;  // ct mark of the connections we NAT

class KernelNat {
 public:
  enum class Kind { Outbound, Gateway, Routed };
  // tun: our TUN device; prefix, prefix6: the tunnel's prefixes (Outbound masquerades only
  // their sources; no prefix6: IPv4 only). Throws std::runtime_error with a one-line reason
  // (after undoing what it did).
  KernelNat(Kind kind, const std::string& tun, const io::Ipv4Prefix& prefix, const NatSettings& s,
            const std::optional<std::array<std::uint8_t, 8>>& prefix6 = std::nullopt);
  ~KernelNat();
  KernelNat(const KernelNat&) = delete;
  KernelNat& operator=(const KernelNat&) = delete;

  const std::string& table() const noexcept { return table_; }
  // Connections NATed by our rules right now (conntrack entries with kNatMark); empty
  // when conntrack cannot be read (logged once). Routed: always 0.
  std::optional<std::uint64_t> active_entries() const;

 private:
  const char* what_;  // "--nat-outbound" or "--gateway", for messages
  bool nat_;          // masquerades (not Routed)
  io::Nftables nft_;
  std::string table_;
  std::string forward_before_;   // net.ipv4.ip_forward as we found it
  std::string forward6_before_;  // net.ipv6.conf.all.forwarding as we found it; empty: untouched
  std::vector<std::pair<std::string, std::string>> forward6_each_;  // each interface's, as found
  std::vector<std::string> ra_kept_;  // interfaces whose accept_ra we raised from 1 to 2
  void restore6() noexcept;
  mutable bool warned_ = false;
};

}  // namespace triglav::ctl
