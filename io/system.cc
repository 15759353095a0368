#include "io/system.h"

#include <linux/capability.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>

namespace triglav::io {

namespace {
bool udp_option_supported(int opt) noexcept {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int v = 0;
  const bool ok = setsockopt(fd, SOL_UDP, opt, &v, sizeof v) == 0;
  close(fd);
  return ok;
}
}  // namespace

bool udp_gso_supported() noexcept { return udp_option_supported(UDP_SEGMENT); }
bool udp_gro_supported() noexcept { return udp_option_supported(UDP_GRO); }

bool has_net_admin() noexcept {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return geteuid() == 0;
  return (data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32))) != 0;
}

bool ipv6_available() noexcept { return access("/proc/sys/net/ipv6", F_OK) == 0; }

std::string read_sysctl(const std::string& path) {
  std::ifstream f(path);
  std::string v;
  std::getline(f, v);
  return v.empty() ? "0" : v;
}

bool write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value << "\n";
  return static_cast<bool>(f);
}

void set_ipv6(const std::string& iface, bool on) {
  const std::string dir = "/proc/sys/net/ipv6/conf/" + iface + "/";
  write_sysctl(dir + "addr_gen_mode", "1");
  write_sysctl(dir + "disable_ipv6", on ? "0" : "1");
}

}  // namespace triglav::io
