#include "io/system.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace triglav::io {

bool has_net_admin() noexcept {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return geteuid() == 0;
  return (data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32))) != 0;
}

}  // namespace triglav::io
