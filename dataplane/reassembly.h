// Tunnel fragments put back together (docs/PROTOCOL.md, "Fragments"). A Data packet
// larger than its uplink's path carries goes as several Data packets with the FRAGMENT
// flag, all on one session and from one sending worker, each a piece of the inner packet
// at a byte offset on an 8-byte grid, the last one also marked LAST_FRAGMENT. The
// receiving worker gathers the pieces of each (session, sender, sequence number) in an
// entry of a fixed table and hands the inner packet on once every byte of it has come,
// each exactly once.
//
// Bounds, all fixed at construction: `entries` packets in progress at once, each at most
// `max_packet` bytes, each given up `timeout_ns` after its first piece. A piece off the
// grid, overlapping another, beyond the packet's end or past max_packet gives its packet
// up (bad). When no entry is free the packet in progress longest is given up for the new
// one (overflow); when all are being written, the piece is dropped (overflow too).
//
// Pieces are authenticated before they get here (each is sealed on its own), so a bad
// piece is the peer's fault, never a forgery; a lost piece costs the packet after the
// timeout, as a lost packet would. Single-threaded: one per worker. A completed
// packet's entry stays taken until release() (its TUN write completed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace triglav::dp {

struct ReassemblyConfig {
  std::uint32_t entries = 32;        // packets in progress (or being written) at once
  std::uint32_t max_packet = 9000;   // the largest inner packet
  std::uint32_t headroom = 0;        // bytes kept free in front of each packet
  std::int64_t timeout_ns = 1'000'000'000;
};

struct ReassemblyStats {
  std::uint64_t pieces = 0;     // pieces taken (not bad)
  std::uint64_t packets = 0;    // packets completed
  std::uint64_t bad = 0;        // pieces that broke the rules (their packet given up)
  std::uint64_t timeouts = 0;   // packets given up incomplete after timeout_ns
  std::uint64_t overflows = 0;  // packets given up, or pieces dropped, for want of an entry
};

class Reassembly {
 public:
  explicit Reassembly(const ReassemblyConfig& cfg = {});

  // Which packet a piece belongs to: the session it came on (its local index), the
  // peer's sender and the packet's sequence number.
  struct Key {
    std::uint32_t session = 0;
    std::uint32_t seq = 0;
    std::uint8_t sender = 0;
    bool operator==(const Key&) const = default;
  };
  struct Piece {
    Key key;
    std::uint32_t offset = 0;
    const std::uint8_t* data = nullptr;
    std::uint32_t len = 0;
    bool last = false;
  };
  // A completed packet: data[0, len) with `headroom` writable bytes in front, valid
  // until release(entry).
  struct Done {
    std::uint32_t entry = 0;
    std::uint8_t* data = nullptr;
    std::uint32_t len = 0;
  };
  enum class Verdict : std::uint8_t { Held, Complete, Bad, NoRoom };

  Verdict offer(const Piece& p, std::int64_t now, Done& out) noexcept;
  void release(std::uint32_t entry) noexcept;
  // Gives up packets whose time ran out (offer does so too).
  void expire(std::int64_t now) noexcept;

  std::uint32_t in_progress() const noexcept;
  const ReassemblyStats& stats() const noexcept { return stats_; }
  const ReassemblyConfig& config() const noexcept { return cfg_; }

 private:
  enum class State : std::uint8_t { Free, Filling, Writing };
  struct Entry {
    Key key;
    State state = State::Free;
    std::int64_t first_ns = 0;
    std::uint32_t got = 0;      // bytes arrived
    std::uint32_t total = 0;    // the packet's length, once its last piece came (0 before)
    std::uint32_t max_end = 0;  // the furthest byte any piece reached
  };
  std::uint64_t* bits(std::uint32_t e) noexcept { return bits_.data() + std::size_t{e} * words_; }
  std::uint8_t* mem(std::uint32_t e) noexcept { return mem_.data() + std::size_t{e} * stride_; }
  std::uint32_t claim(const Key& k, std::int64_t now) noexcept;  // an entry for a new packet, or entries
  void free_entry(std::uint32_t e) noexcept;
  bool mark(std::uint32_t e, std::uint32_t offset, std::uint32_t len) noexcept;  // false: overlap

  ReassemblyConfig cfg_;
  std::size_t stride_ = 0;  // headroom + max_packet
  std::size_t words_ = 0;   // bitmap words per entry, a bit per grain
  std::vector<Entry> entries_;
  std::vector<std::uint8_t> mem_;
  std::vector<std::uint64_t> bits_;
  ReassemblyStats stats_;
};

}  // namespace triglav::dp
