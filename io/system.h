// Start-up checks of the process's environment.
#pragma once

namespace triglav::io {

// True if the effective capability set holds CAP_NET_ADMIN (root normally does).
bool has_net_admin() noexcept;

// Whether the kernel takes UDP_SEGMENT (UDP GSO, Linux 4.18) and UDP_GRO (Linux 5.0).
bool udp_gso_supported() noexcept;
bool udp_gro_supported() noexcept;

}  // namespace triglav::io
