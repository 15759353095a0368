// The worker's event loop, private to dataplane/worker/. One class, its members defined
// by direction: loop.cc (the ring, completion dispatch, uplink commands, the control
// thread's queues), rx.cc (uplinks -> TUN, up to the inner packet), tun_write.cc (the
// inner packet into the TUN, userspace GRO), tx.cc (TUN -> uplinks) and udp_send.h (the
// send batcher). Its state is grouped the same way: Rx, TunWrite and Tx below.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/flow.h"
#include "dataplane/offload.h"
#include "dataplane/reassembly.h"
#include "dataplane/reorder.h"
#include "dataplane/worker/udp_send.h"
#include "dataplane/worker/worker.h"
#include "io/ring.h"

namespace triglav::dp {

// io_uring user data: the operation in the top byte, an index (uplink, buffer, batch or
// GRO write) below it.
enum Op : std::uint64_t {
  kOpRecv = 1,
  kOpTunPoll,
  kOpStop,
  kOpTunWrite,
  kOpSend,
  kOpCommand,
  kOpTunGroWrite,
  kOpTunHeldWrite,  // a packet the reorder buffer held (index: its slot)
  kOpTunFragWrite,  // a packet put back together from fragments (index: its entry)
};
inline constexpr int kOpShift = 56;
constexpr std::uint64_t ud(Op op, std::uint64_t idx) noexcept { return std::uint64_t{op} << kOpShift | idx; }

inline constexpr unsigned kRingEntries = 512;
inline constexpr unsigned kRxBuffers = 1024;        // without GRO: one datagram each
inline constexpr unsigned kRxGroBuffers = 256;      // with GRO: up to 64 KB each
inline constexpr std::size_t kGroBufferPayload = 65536;
inline constexpr unsigned kTxSlots = 512;
inline constexpr unsigned kBatch = 64;              // TUN reads (or completions x 2) per loop
inline constexpr std::size_t kPayloadOffset = kHeaderLen + kSeqLen;
// echoed Ping body, Data bytes, packets received, packets sent, answer time (8 each)
inline constexpr std::size_t kPongBody = 40;
inline constexpr std::size_t kControlSpace = 64;    // recvmsg control room (holds the UDP_GRO cmsg)
inline constexpr std::size_t kTunReadMax = 65535 + 64;  // a TUN super-packet (IP length) and some slack
inline constexpr unsigned kGroWrites = 512;         // super-packet TUN writes in flight at most

class Worker::Loop final : private SendSink {
 public:
  Loop(const WorkerConfig& cfg, Counters& counters, int stop_fd, int cmd_fd, CommandQueue& commands);
  void run() noexcept;

 private:
  // What a receive step decided: go on to the next step, stop here (the datagram was
  // handed on or answered), or drop it for a reason, counted in one place.
  struct Step {
    enum Kind : std::uint8_t { Next, Done, Drop } kind;
    Counter why;
  };
  static constexpr Step next() noexcept { return {Step::Next, Counter::kCount}; }
  static constexpr Step done() noexcept { return {Step::Done, Counter::kCount}; }
  static constexpr Step drop(Counter why) noexcept { return {Step::Drop, why}; }

  // loop.cc
  void arm_recv(unsigned uplink) noexcept;
  void arm_poll(int fd, Op op) noexcept;
  void drain_completions() noexcept;
  void complete(const io_uring_cqe* cqe) noexcept;
  void rearm_receives() noexcept;
  void run_commands() noexcept;
  void report_releases() noexcept;
  void enable_gro(int fd) noexcept;
  bool hand_to_control(ControlMessage::Kind kind, unsigned uplink, std::uint32_t index, const std::uint8_t* pkt,
                       std::size_t len, const io::Endpoint* from) noexcept;
  void wake_control() noexcept;
  void sendmsg(std::uint16_t batch, int fd, const msghdr* msg) noexcept override;
  void cancel_all() noexcept;

  // rx.cc
  void on_recv(unsigned uplink, const io_uring_cqe* cqe) noexcept;
  bool receive(unsigned uplink, std::uint16_t bid, std::uint8_t* pkt, std::size_t len,
               const io::Endpoint& from) noexcept;
  Step classify(std::span<const std::uint8_t> pkt, Header& h, Session*& s) noexcept;
  Step screen(unsigned uplink, const Header& h, const std::uint8_t* pkt, std::size_t len,
              const io::Endpoint& from) noexcept;
  Step open(Session& s, const Header& h, std::uint8_t* pkt, std::size_t len, const io::Endpoint& from) noexcept;
  Step to_control(Session& s, unsigned uplink, const Header& h, const std::uint8_t* body, std::size_t n,
                  const io::Endpoint& from) noexcept;
  Step accept(Session& s, const Header& h, std::uint8_t* body, std::size_t n, std::size_t& inner_len) noexcept;
  Step admit(Session& s, unsigned sender, std::uint32_t seq, std::uint8_t* inner, std::size_t avail, bool partial,
             std::size_t& inner_len) noexcept;
  Step reassemble(Session& s, const Header& h, std::uint16_t bid, const std::uint8_t* body, std::size_t n) noexcept;
  bool reorder(const Session& s, const Header& h, std::uint16_t bid, std::uint8_t* body, std::size_t n,
               std::size_t inner_len) noexcept;
  bool source_allowed(const Group& g, const std::uint8_t* inner, std::size_t n) const noexcept;
  void ask_repairs(Group& g) noexcept;

  // tun_write.cc
  void deliver(std::uint16_t bid, std::uint8_t* inner, std::size_t len, bool partial) noexcept;
  std::uint8_t* frame_alone(std::uint8_t* inner, std::size_t& len, bool partial) noexcept;
  void write_alone(std::uint16_t bid, std::uint8_t* inner, std::size_t len, bool partial) noexcept;
  void write_tun(std::uint16_t bid, std::uint8_t* p, std::size_t len) noexcept;
  void flush_run(std::uint16_t bid) noexcept;
  void tun_written(std::uint16_t bid, int res) noexcept;
  void write_held() noexcept;
  void expire_held() noexcept;
  void count_reorder() noexcept;
  void count_reassembly() noexcept;
  void count_since(Counter k, std::uint64_t now, std::uint64_t& before) noexcept;
  void release_buffer(std::uint16_t bid, unsigned writes) noexcept;

  // tx.cc
  bool tx_room() const noexcept;
  bool tx_work() const noexcept;
  void tx_batch() noexcept;
  void tx_batch_offload() noexcept;
  bool read_offload() noexcept;
  bool send_pending() noexcept;
  const GroupRoute* route_for(const std::uint8_t* inner, std::size_t n) const noexcept;
  void no_route(const std::uint8_t* inner, std::size_t n, std::uint64_t count = 1) noexcept;
  unsigned owned_streams(const GroupRoute& r) const noexcept;
  void generate() noexcept;
  void send_data(const GroupRoute& r, std::uint16_t slot, std::uint8_t* buf, std::size_t n,
                 bool partial = false) noexcept;
  bool send_striped(const GroupRoute& r, GroupWorkerState& gw, std::uint16_t slot, std::uint8_t* buf, std::size_t n,
                    bool partial) noexcept;
  GroupWorkerState* worker_state(const GroupRoute& r) noexcept;
  bool stripe_allowed(const GroupRoute& r, const GroupWorkerState& gw, UplinkMask& allowed) const noexcept;
  const GroupRoute* route_of(const Group& g) const noexcept;
  Step answer_nack(Session& s, const std::uint8_t* body, std::size_t n) noexcept;
  void resend(const GroupRoute& r, GroupWorkerState& gw, UplinkMask allowed, std::uint16_t slot, std::uint8_t* buf,
              unsigned origin, std::uint32_t seq, const RepairStore::Found& f) noexcept;
  bool emit_striped(Session* s, const io::Endpoint& to, std::uint16_t slot, std::uint8_t* buf, std::size_t n,
                    bool partial, std::uint8_t aux) noexcept;
  std::size_t fragment_limit(const GroupRoute& r, const Session& s) const noexcept;
  bool send_fragments(Session& s, const io::Endpoint& to, const std::uint8_t* buf, std::size_t n,
                      std::size_t max_datagram) noexcept;
  Step send_pong(Session& s, const std::uint8_t* body, std::size_t n) noexcept;
  bool emit(Session* s, const io::Endpoint& to, PacketType type, std::uint16_t slot, std::uint8_t* buf,
            std::size_t body, std::uint8_t aux = 0, std::uint8_t flags = 0) noexcept;
  // The inner packet a slot holds at most: its size less header, sequence number, a
  // striped packet's flow sequence number and tag.
  std::size_t slot_room() const noexcept { return cfg_.max_packet - kPayloadOffset - kFlowSeqLen - kTagLen; }
  std::uint8_t* slot_mem(std::uint16_t slot) noexcept { return tx_.mem.data() + std::size_t{slot} * cfg_.max_packet; }
  std::uint16_t take_slot() noexcept {
    const std::uint16_t s = tx_.free.back();
    tx_.free.pop_back();
    return s;
  }

  const WorkerConfig& cfg_;
  Counters& c_;
  int stop_fd_;
  int cmd_fd_;
  CommandQueue& commands_;
  io::Ring ring_;
  std::array<int, kMaxUplinks> fds_{};  // uplink id -> socket (-1: none)
  const Snapshot* snap_ = nullptr;      // loaded once per loop iteration (or newer, rx.cc)
  std::int64_t now_ = 0;
  bool running_ = true;
  UplinkMask unreleased_ = 0;  // uplinks let go of, not yet reported (the queue was full)
  std::optional<HandshakeGate> gate_;  // server only

  struct Rx {  // uplinks -> inner packets
    Rx(io::Ring& ring, bool gro_supported);
    bool gro = false;  // the kernel coalesces datagrams (UDP_GRO)
    io::BufRing buffers;
    std::vector<std::uint16_t> refs;  // TUN writes still pointing into each receive buffer
    msghdr msg{};
    std::vector<bool> rearm;  // uplinks whose multishot receive ended
    unsigned recycled = 0;    // buffers given back this iteration
  } rx_;

  struct TunWrite {  // inner packets -> TUN
    // Userspace GRO: the open run of the buffer being handled, and the gather lists of
    // super-packet writes in flight (each until its completion).
    struct GroWrite {
      std::array<iovec, kMaxGroSegments> iov;
      std::uint16_t bid = 0;
    };
    GroRun run;
    std::uint16_t run_slot = 0;
    std::vector<GroWrite> gro;
    std::vector<std::uint16_t> free_gro;
    unsigned buf_writes = 0;  // TUN writes submitted for the buffer being handled
    unsigned in_flight = 0;   // TUN writes not completed
    // Striped flows put back in order (made with the first striped packet), and its
    // statistics as last added to the counters.
    std::optional<Reorder> reorder;
    ReorderStats counted;
    // Tunnel fragments put back together (made with the first fragment), and its
    // statistics as last added to the counters.
    std::optional<Reassembly> frags;
    ReassemblyStats frags_counted;
  } tw_;

  struct Tx {  // TUN and benchmark generator -> uplinks
    std::vector<std::uint8_t> mem;     // kTxSlots slots of cfg_.max_packet bytes
    std::vector<std::uint16_t> free;   // free slots
    std::vector<std::uint8_t> tun_buf; // TUN offloads: one read, before it is cut up
    struct Pending {  // the read in tun_buf while its segments go out
      bool active = false;
      TunPacket kind = TunPacket::Plain;
      GsoPlan plan;
      std::size_t len = 0;  // after the virtio_net_hdr
      unsigned segments = 0, next = 0;
    } pending;
    FlowTable flows;
    bool tun_ready = false;
    bool generating = false;  // the snapshot lists benchmark routes this worker sends
    unsigned gen_next = 0, gen_stream = 0;
  } tx_;
  UdpSender sender_;
};

}  // namespace triglav::dp
