// A layer-3 TUN interface with one queue per worker (IFF_MULTI_QUEUE, IFF_NO_PI).
// With offloads asked for, it also carries a virtio_net_hdr in front of every packet
// (IFF_VNET_HDR) and takes TCP and UDP segmentation and checksums (TUNSETOFFLOAD:
// checksum, TSO4, TSO6, TSO with ECN, and USO4/6 where the kernel has them): reads may
// then return super-packets of up to 64 KB (dataplane/offload.h). A kernel that refuses
// them leaves a plain device.
//
// The device is not persistent: the kernel deletes it, with its addresses and routes,
// when the last queue fd closes, so every exit path of the process cleans it up.
#pragma once

#include <string>
#include <vector>

namespace triglav::io {

class TunDevice {
 public:
  // Creates the interface with `queues` non-blocking queue fds. Refuses a name that
  // still exists after 2 s (a killed predecessor's device is given that long to go). Throws std::runtime_error with a one-line reason.
  static TunDevice create(const std::string& name, int queues, bool offload = false);
  TunDevice() = default;
  ~TunDevice();
  TunDevice(TunDevice&& o) noexcept;
  TunDevice& operator=(TunDevice&& o) noexcept;

  const std::string& name() const noexcept { return name_; }
  int ifindex() const noexcept { return ifindex_; }
  int queue_fd(int i) const noexcept { return fds_[static_cast<std::size_t>(i)]; }
  int queues() const noexcept { return static_cast<int>(fds_.size()); }
  // Every read and write starts with a virtio_net_hdr (kVnetHdrLen bytes).
  bool vnet_hdr() const noexcept { return vnet_hdr_; }
  // The kernel segments nothing for us: TCP arrives in super-packets to be cut up.
  bool tso() const noexcept { return tso_; }

 private:
  void close_all() noexcept;
  std::string name_;
  int ifindex_ = 0;
  std::vector<int> fds_;
  bool vnet_hdr_ = false;
  bool tso_ = false;
};

}  // namespace triglav::io
