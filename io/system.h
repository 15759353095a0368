// Start-up checks of the process's environment.
#pragma once

#include <string>

namespace triglav::io {

// True if the effective capability set holds CAP_NET_ADMIN (root normally does).
bool has_net_admin() noexcept;

// Whether the kernel takes UDP_SEGMENT (UDP GSO, Linux 4.18) and UDP_GRO (Linux 5.0).
bool udp_gso_supported() noexcept;
bool udp_gro_supported() noexcept;

// Whether this kernel has IPv6 at all (/proc/sys/net/ipv6).
bool ipv6_available() noexcept;
// A /proc/sys value's first line ("0" when unreadable or empty), and writing one (false
// when it cannot be written).
std::string read_sysctl(const std::string& path);
bool write_sysctl(const std::string& path, const std::string& value);
// IPv6 on an interface without a link-local address (a TUN has no neighbours, and
// without one the kernel has less to say on it), or off; best effort (IPv6 may be off
// altogether).
void set_ipv6(const std::string& iface, bool on);

}  // namespace triglav::io
