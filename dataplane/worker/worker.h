// A dataplane worker: one thread, one io_uring, one TUN queue and one UDP socket per
// uplink. It moves packets in both directions and hands handshake traffic to the
// control thread. rx.cc and tx.cc open with the stages of each direction.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/handshake_guard.h"
#include "dataplane/repair.h"
#include "dataplane/snapshot.h"
#include "io/endpoint.h"
#include "io/spsc_ring.h"

namespace triglav::dp {

// What a worker hands to the control thread: a handshake or error packet as received,
// or, for a session, an authenticated Close or the body of a Pong (a probe answer).
struct ControlMessage {
  // UplinkReleased: the worker no longer uses uplink `uplink`'s socket (it may be closed).
  // Control: an authenticated Control packet's body (wire.h, ControlKind).
  enum class Kind : std::uint8_t { Packet, Close, Pong, UplinkReleased, Control } kind = Kind::Packet;
  std::uint8_t uplink = 0;
  std::uint16_t len = 0;
  std::uint32_t session_index = 0;
  io::Endpoint from;
  std::array<std::uint8_t, kInitLen> data{};  // the largest handshake packet
};
using ControlQueue = io::SpscRing<ControlMessage, 256>;

// Client: the sender index of each uplink's handshake in progress (0: none). The control
// thread writes it before it sends an initiation; the workers hand on only the handshake
// and Error datagrams addressed to one of these (the others count drop_stray_handshake),
// so datagrams from strangers never reach the control thread.
struct PendingHandshakes {
  std::array<std::atomic<std::uint32_t>, kMaxUplinks> index{};
  bool expects(std::uint32_t receiver) const noexcept {
    if (receiver == 0) return false;
    for (const auto& i : index)
      if (i.load(std::memory_order_relaxed) == receiver) return true;
    return false;
  }
};

// From the control thread: start using `fd` as uplink `id`'s socket, or (fd = -1) stop
// using that uplink's socket and answer with UplinkReleased.
struct UplinkCommand {
  std::uint8_t id = 0;
  int fd = -1;
};
using CommandQueue = io::SpscRing<UplinkCommand, 64>;

// The bytes a slot needs for an inner packet of the TUN MTU: the outer header, the
// sequence number and the tag around it; at least 2048, in whole cache lines.
std::size_t max_packet_for(int mtu) noexcept;

struct WorkerConfig {
  unsigned id = 0;  // also the sender id in this worker's counters
  int cpu = -1;     // pinned to this CPU (-1: not pinned)
  unsigned workers = 1;  // how many there are (benchmark stream s belongs to worker s mod workers)
  int tun_fd = -1;
  bool tun_vnet_hdr = false;  // the TUN carries virtio_net_hdrs (io::TunDevice::vnet_hdr)
  std::vector<int> uplink_fds;  // index = uplink id (-1: none); more come by command
  std::size_t max_packet = 2048;  // a transmit slot or receive buffer: max_packet_for(mtu)
  const SnapshotHolder* snapshots = nullptr;
  Qsbr* qsbr = nullptr;
  // To the control thread: what sessions say (Pongs, Closes, Control) and the worker's
  // own reports go to to_control; unauthenticated handshake and Error datagrams go to
  // handshakes_to_control (to_control when null), so a flood of those never delays them.
  ControlQueue* to_control = nullptr;
  ControlQueue* handshakes_to_control = nullptr;
  const PendingHandshakes* pending_handshakes = nullptr;  // client: see PendingHandshakes
  int control_eventfd = -1;  // written after pushing to either queue
  std::optional<HandshakeMacKeys> handshake_keys;  // server: see Worker::guard_handshakes
  GuardLoad* guard_load = nullptr;                 // server: the load all workers see
  const io::RelaySources* relay_sources = nullptr; // server with tcp_fallback
  // Loss repair: every worker's store of the packets it striped (this worker writes
  // stores[id], and reads any when the peer asks); null: no repair.
  RepairStores* repair = nullptr;
};

class Worker {
 public:
  explicit Worker(WorkerConfig cfg);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread and waits until its ring is set up. Throws std::runtime_error
  // naming the problem if it could not start.
  void start();
  // Asks the thread to finish and joins it. Idempotent.
  void stop() noexcept;

  const Counters& counters() const noexcept { return counters_; }

  // Server, before start(): initiations are checked here (dataplane/handshake_guard.h)
  // before the control thread sees them; other handshake and Error packets are dropped.
  // load: shared by every worker, so that "under load" is the whole server's view;
  // relay: the sources behind the TCP relay (null without tcp_fallback).
  void guard_handshakes(const HandshakeMacKeys& keys, GuardLoad* load = nullptr,
                        const io::RelaySources* relay = nullptr) noexcept;

  // Control thread: hands the worker an uplink command (see UplinkCommand). False if
  // the command queue is full.
  bool command(const UplinkCommand& c) noexcept;
  // Control thread: wakes the worker so that it looks at the snapshot again (one that
  // lists benchmark traffic to send, which no packet would announce).
  void wake() noexcept;

 private:
  class Loop;
  void run(std::promise<std::string> started) noexcept;

  WorkerConfig cfg_;
  Counters counters_;
  int stop_fd_ = -1;
  int cmd_fd_ = -1;
  CommandQueue commands_;
  std::thread thread_;
};

}  // namespace triglav::dp
