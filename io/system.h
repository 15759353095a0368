// Start-up checks of the process's environment.
#pragma once

namespace triglav::io {

// True if the effective capability set holds CAP_NET_ADMIN (root normally does).
bool has_net_admin() noexcept;

}  // namespace triglav::io
