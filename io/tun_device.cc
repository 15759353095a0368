#include "io/tun_device.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace triglav::io {
namespace {
constexpr int kLingerWaitMs = 2000;
constexpr int kPollMs = 20;
// UDP segmentation offloads (linux/if_tun.h from 6.2; older headers lack the names).
constexpr unsigned kTunUso4 = 0x20, kTunUso6 = 0x40;
}  // namespace

TunDevice TunDevice::create(const std::string& name, int queues, bool offload) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    throw std::runtime_error("TUN name '" + name + "' must be 1-15 characters");
  // A TUN of a process that was just killed lingers until the kernel has released its
  // queue fds (io_uring drops its file references asynchronously), so an immediate
  // restart would collide with it. Give such a device a moment to disappear.
  for (int waited_ms = 0; if_nametoindex(name.c_str()) != 0; waited_ms += kPollMs) {
    if (waited_ms >= kLingerWaitMs)
      throw std::runtime_error("network interface " + name + " already exists");
    usleep(kPollMs * 1000);
  }
  TunDevice t;
  t.name_ = name;
  for (int q = 0; q < queues; ++q) {
    const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == ENOENT || e == ENXIO || e == ENODEV)
        throw std::runtime_error("/dev/net/tun is not available (" + std::string(std::strerror(e)) +
                                 "): load the tun module or create the device node");
      throw std::runtime_error("cannot open /dev/net/tun: " + std::string(std::strerror(e)));
    }
    ifreq ifr{};
    ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | (offload ? IFF_VNET_HDR : 0));
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      const int e = errno;
      close(fd);
      if (e == EPERM)
        throw std::runtime_error("creating TUN device " + name + " needs root (CAP_NET_ADMIN)");
      if (e == ENOTTY || e == EBADFD)
        throw std::runtime_error("/dev/net/tun is not a TUN device node");
      throw std::runtime_error("cannot create TUN device " + name + ": " + std::strerror(e));
    }
    t.fds_.push_back(fd);
  }
  t.vnet_hdr_ = offload;
  if (offload) {  // best effort: without them the packets are plain (vnet header all zero)
    const unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    t.tso_ = ioctl(t.fds_[0], TUNSETOFFLOAD, tso | kTunUso4 | kTunUso6) == 0 ||  // Linux 6.2 on
             ioctl(t.fds_[0], TUNSETOFFLOAD, tso) == 0 ||
             ioctl(t.fds_[0], TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0;
  }
  t.ifindex_ = static_cast<int>(if_nametoindex(name.c_str()));
  if (t.ifindex_ == 0) throw std::runtime_error("TUN device " + name + " vanished after creation");
  return t;
}

TunDevice::~TunDevice() { close_all(); }

TunDevice::TunDevice(TunDevice&& o) noexcept
    : name_(std::move(o.name_)), ifindex_(o.ifindex_), fds_(std::move(o.fds_)), vnet_hdr_(o.vnet_hdr_), tso_(o.tso_) {
  o.fds_.clear();
}

TunDevice& TunDevice::operator=(TunDevice&& o) noexcept {
  if (this != &o) {
    close_all();
    name_ = std::move(o.name_);
    ifindex_ = o.ifindex_;
    fds_ = std::move(o.fds_);
    vnet_hdr_ = o.vnet_hdr_;
    tso_ = o.tso_;
    o.fds_.clear();
  }
  return *this;
}

void TunDevice::close_all() noexcept {
  for (int fd : fds_) close(fd);
  fds_.clear();
}

}  // namespace triglav::io
