// Per-worker counters: every packet outcome, including each drop reason, is a counter.
// A worker writes its own block with relaxed stores (no read-modify-write, no sharing);
// the control thread sums the blocks when it reports.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace triglav::dp {

enum class Counter : std::uint8_t {
  RxPackets,        // authenticated data packets written to the TUN
  RxBytes,          // inner bytes of those
  TxPackets,        // data packets sent to a peer
  TxBytes,          // inner bytes of those
  HandshakePackets, // handshake/error packets handed to the control thread
  TunWriteErrors,
  UdpSendErrors,
  RxNoBuffers,      // the kernel had no free receive buffer (back-pressure)
  TunReadPackets,   // inner packets read from the TUN
  TxRedundantCopies,// Data packets sent again on another uplink (redundant strategy)
  TxGsoSends,       // sendmsg calls that carried several datagrams (UDP GSO)
  RxGroReceives,    // receives that carried several datagrams (UDP GRO)
  TunGsoReads,      // TUN reads that carried a TCP or UDP super-packet (cut into segments here)
  TunGroWrites,     // TUN writes that carried received TCP segments joined into a super-packet
  BenchGenerated,   // synthetic packets sent for benchmark sessions (triglav benchmark)
  TunLocalIgnored,  // IPv6 the kernel sent to multicast or link-local addresses: not for the tunnel
  TxCookieReplies,  // server under load: initiations answered with a cookie reply
  // Drops (each a named reason).
  DropMalformed,    // too short, bad version or type, truncated datagram
  DropUnknownIndex, // no session has this receiver index
  DropAuth,         // the AEAD tag did not verify (wrong key, tampering)
  DropReplay,       // counter already seen or too old
  DropDuplicate,    // session sequence number already delivered (a copy from another uplink)
  DropBadInner,     // the decrypted payload is not an IP packet
  DropBadSource,    // inner source address is not the one the session owns
  DropNoRoute,      // no client for the inner destination, or none of its uplinks usable
  DropQueueFull,    // the control thread's queue was full
  DropUnexpected,   // a valid packet of a type this side does not take
  DropKeysUsedUp,   // the session's keys sealed their last allowed message (rekey overdue)
  DropHandshakeMac, // server: an initiation of the wrong length or without a valid mac1
  DropHandshakeRate,// server under load: an initiation beyond its source's rate, or no cookie reply allowed
  DropInKernel,     // dropped by the kernel before we read it: the server's socket filter, a full queue
  DropSealFailed,   // the cipher library failed to seal a packet (never sent half-sealed)
  DropStrayHandshake, // client: a handshake or Error packet for no handshake in progress
  kCount
};

const char* counter_name(Counter c) noexcept;

struct alignas(64) Counters {
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Counter::kCount)> v{};

  void add(Counter c, std::uint64_t n = 1) noexcept {
    auto& a = v[static_cast<std::size_t>(c)];
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get(Counter c) const noexcept {
    return v[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
  }
};

// A plain sum of several workers' counters.
struct CounterTotals {
  std::array<std::uint64_t, static_cast<std::size_t>(Counter::kCount)> v{};
  void add(const Counters& c) noexcept;
  std::uint64_t get(Counter c) const noexcept { return v[static_cast<std::size_t>(c)]; }
  std::uint64_t drops() const noexcept;
  // "rx_packets=1 rx_bytes=84 ... drop_auth=0 ..." on one line.
  std::string format() const;
};

}  // namespace triglav::dp
