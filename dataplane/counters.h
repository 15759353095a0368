// Per-worker counters: every packet outcome, including each drop reason, is a counter.
// A worker writes its own block with relaxed stores (no read-modify-write, no sharing);
// the control thread sums the blocks when it reports.
//
// The one list of them is TRIGLAV_COUNTERS below: it makes the enum, the names the log
// and `triglav status --json` use, the Prometheus families and help, which counters are
// drops, and `triglav counters --list` (which the integration tests read). A new counter
// is one line there (and a row in docs/OPERATIONS.md); a new drop reason is a Drop line,
// shown as triglav_drops_total{reason="..."}.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace triglav::dp {

// X(Enum, name, kind, where, metric, help)
//   kind   Total (something happened) or Drop (a packet was dropped, for this reason)
//   where  Rx (uplinks -> TUN), Tx (TUN -> uplinks) or Control (to and from the control
//          thread, handshakes)
//   metric the Prometheus family of a Total ("": shown another way); a Drop's is
//          triglav_drops_total with its name less "drop_" as the reason
#define TRIGLAV_COUNTERS(X)                                                                                      \
  X(RxPackets, "rx_packets", Total, Rx, "triglav_packets_received_total",                                      \
    "Data packets received, authenticated and delivered (to the TUN, or counted for a benchmark).")            \
  X(RxBytes, "rx_bytes", Total, Rx, "triglav_bytes_received_total",                                          \
    "Inner bytes received, authenticated and delivered (per uplink: arrived on it, duplicates included).")   \
  X(TxPackets, "tx_packets", Total, Tx, "triglav_packets_sent_total", "Data packets sent to the peer (each copy counted).") \
  X(TxBytes, "tx_bytes", Total, Tx, "triglav_bytes_sent_total", "Inner bytes sent to the peer (each redundant copy counted).") \
  X(HandshakePackets, "handshake_packets", Total, Control, "",                                                 \
    "Handshake and Error packets handed to the control thread.")                                              \
  X(TunWriteErrors, "tun_write_errors", Total, Rx, "triglav_tun_write_errors_total", "TUN writes the kernel refused.") \
  X(UdpSendErrors, "udp_send_errors", Total, Tx, "triglav_udp_send_errors_total",                              \
    "Datagrams whose UDP send the kernel refused.")                                                           \
  X(RxNoBuffers, "rx_no_buffers", Total, Rx, "triglav_rx_no_buffers_total",                                    \
    "Receives that found no free buffer (back-pressure).")                                                    \
  X(TunReadPackets, "tun_read_packets", Total, Tx, "triglav_tun_packets_read_total",                           \
    "Inner packets read from the TUN device (each segment of a super-packet counted).")                       \
  X(TxRedundantCopies, "tx_redundant_copies", Total, Tx, "triglav_packets_retransmitted_total",                \
    "Data packets sent again on another uplink: the redundant strategy's extra copies.")                      \
  X(TxStriped, "tx_striped", Total, Tx, "triglav_striped_packets_sent_total",                                \
    "Data packets of striped flows (strategy aggregate), each on the uplink where it arrives first.")         \
  X(RxReordered, "rx_reordered", Total, Rx, "triglav_reorder_held_total",                                     \
    "Striped packets that arrived ahead of a gap in their flow and waited in the reorder buffer.")           \
  X(RxReorderLate, "rx_reorder_late", Total, Rx, "triglav_reorder_late_total",                               \
    "Striped packets that arrived after their flow had given their gap up: delivered late.")                 \
  X(RxReorderLostGaps, "rx_reorder_lost_gaps", Total, Rx, "triglav_reorder_lost_gaps_total",                 \
    "Gaps in striped flows given up as lost once every active uplink had delivered a later packet.")         \
  X(RxReorderTimeoutGaps, "rx_reorder_timeout_gaps", Total, Rx, "triglav_reorder_timeout_gaps_total",        \
    "Gaps in striped flows given up when their wait (one-way-delay spread plus jitter) ran out.")            \
  X(RxReorderOverflows, "rx_reorder_overflows", Total, Rx, "triglav_reorder_overflows_total",                \
    "Gaps in striped flows given up because the reorder buffer's memory bound was reached.")                 \
  X(RxReorderUntracked, "rx_reorder_untracked", Total, Rx, "triglav_reorder_untracked_total",                \
    "Striped packets delivered unordered: the reorder buffer's flow table had no room for their flow.")      \
  X(RxReorderOtherWorker, "rx_reorder_other_worker", Total, Rx, "triglav_reorder_other_worker_total",          \
    "Striped packets that reached a worker other than their peer's: delivered as they came, not reordered.") \
  X(RxReorderRepairAsked, "rx_reorder_repair_asked", Total, Rx, "triglav_reorder_repair_asked_total",        \
    "Gaps in striped flows declared lost and asked of the peer again (loss repair).")                        \
  X(RxReorderRepaired, "rx_reorder_repaired", Total, Rx, "triglav_reorder_repaired_total",                   \
    "Striped packets sent again by the peer that arrived in time to be put in order.")                       \
  X(TxRepairRequests, "tx_repair_requests", Total, Rx, "triglav_repair_requests_sent_total",                  \
    "Nacks sent: lost striped packets asked of the peer again.")                                              \
  X(RxRepairRequests, "rx_repair_requests", Total, Tx, "triglav_repair_requests_received_total",              \
    "Nacks received: the peer asked for striped packets again.")                                              \
  X(TxRepairs, "tx_repairs", Total, Tx, "triglav_repairs_sent_total",                                         \
    "Striped packets sent again because the peer asked.")                                                     \
  X(TxRepairUnavailable, "tx_repair_unavailable", Total, Tx, "triglav_repair_unavailable_total",              \
    "Packets the peer asked for again that were no longer kept, or already sent again.")                     \
  X(TxFragmented, "tx_fragmented", Total, Tx, "triglav_fragmented_packets_sent_total",                        \
    "Inner packets larger than their uplink's path carries, sent as tunnel fragments.")                      \
  X(TxFragments, "tx_fragments", Total, Tx, "triglav_fragments_sent_total", "Tunnel fragments sent.")          \
  X(RxFragments, "rx_fragments", Total, Rx, "triglav_fragments_received_total",                               \
    "Tunnel fragments received and kept for their packet.")                                                   \
  X(RxReassembled, "rx_reassembled", Total, Rx, "triglav_reassembled_packets_total",                          \
    "Inner packets put back together from tunnel fragments.")                                                 \
  X(RxReorderWait1ms, "rx_reorder_wait_under_1ms", Total, Rx, "triglav_reorder_wait_under_1ms_total",            \
    "Reordered packets that waited less than 1 ms.")                                                             \
  X(RxReorderWait2ms, "rx_reorder_wait_1_2ms", Total, Rx, "triglav_reorder_wait_1_2ms_total",                    \
    "Reordered packets that waited 1 to 2 ms.")                                                                  \
  X(RxReorderWait4ms, "rx_reorder_wait_2_4ms", Total, Rx, "triglav_reorder_wait_2_4ms_total",                    \
    "Reordered packets that waited 2 to 4 ms.")                                                                  \
  X(RxReorderWait8ms, "rx_reorder_wait_4_8ms", Total, Rx, "triglav_reorder_wait_4_8ms_total",                    \
    "Reordered packets that waited 4 to 8 ms.")                                                                  \
  X(RxReorderWait16ms, "rx_reorder_wait_8_16ms", Total, Rx, "triglav_reorder_wait_8_16ms_total",                 \
    "Reordered packets that waited 8 to 16 ms.")                                                                 \
  X(RxReorderWait32ms, "rx_reorder_wait_16_32ms", Total, Rx, "triglav_reorder_wait_16_32ms_total",               \
    "Reordered packets that waited 16 to 32 ms.")                                                                \
  X(RxReorderWait64ms, "rx_reorder_wait_32_64ms", Total, Rx, "triglav_reorder_wait_32_64ms_total",               \
    "Reordered packets that waited 32 to 64 ms.")                                                                \
  X(RxReorderWait128ms, "rx_reorder_wait_64_128ms", Total, Rx, "triglav_reorder_wait_64_128ms_total",            \
    "Reordered packets that waited 64 to 128 ms.")                                                               \
  X(RxReorderWaitLong, "rx_reorder_wait_128ms_or_more", Total, Rx, "triglav_reorder_wait_128ms_or_more_total",   \
    "Reordered packets that waited 128 ms or more.")                                                             \
  X(TxGsoSends, "tx_gso_sends", Total, Tx, "triglav_udp_gso_sends_total",                                      \
    "Sends that carried several datagrams (UDP GSO).")                                                        \
  X(RxGroReceives, "rx_gro_receives", Total, Rx, "triglav_udp_gro_receives_total",                             \
    "Receives that carried several datagrams (UDP GRO).")                                                     \
  X(TunGsoReads, "tun_gso_reads", Total, Tx, "triglav_tun_gso_reads_total",                                    \
    "TUN reads that carried a TCP or UDP super-packet (TSO, USO), cut into segments here.")                   \
  X(TunGroWrites, "tun_gro_writes", Total, Rx, "triglav_tun_gro_writes_total",                                 \
    "TUN writes that carried received TCP segments joined into one.")                                         \
  X(BenchGenerated, "bench_generated", Total, Tx, "triglav_bench_generated_packets_total",                     \
    "Synthetic packets sent for benchmark sessions.")                                                         \
  X(TunLocalIgnored, "tun_local_ignored", Total, Tx, "triglav_tun_local_ignored_total",                        \
    "IPv6 packets to multicast or link-local addresses the kernel sent into the TUN, not carried.")           \
  X(TxCookieReplies, "tx_cookie_replies", Total, Control, "",                                                  \
    "Server under load: initiations answered with a cookie reply.")                                           \
  X(DropMalformed, "drop_malformed", Drop, Rx, "",                                                             \
    "Not a well-formed packet: too short for its type, bad version, type or sender id, a Ping body not 8 bytes.") \
  X(DropTruncated, "drop_truncated", Drop, Rx, "",                                                            \
    "A datagram larger than the receive buffer (or a receive the kernel handed over unreadable).")           \
  X(DropUnknownIndex, "drop_unknown_index", Drop, Rx, "", "No session has this receiver index.")               \
  X(DropAuth, "drop_auth", Drop, Rx, "", "The AEAD tag did not verify (wrong key, tampering).")                \
  X(DropReplay, "drop_replay", Drop, Rx, "", "Counter already seen or too old.")                               \
  X(DropDuplicate, "drop_duplicate", Drop, Rx, "",                                                             \
    "Sequence number already delivered: a copy from another uplink.")                                         \
  X(DropBadInner, "drop_bad_inner", Drop, Rx, "", "The decrypted payload is not an IP packet.")                \
  X(DropBadSource, "drop_bad_source", Drop, Rx, "",                                                            \
    "The inner source address is not one the client owns (or its address is still another run's).")           \
  X(DropNoRoute, "drop_no_route", Drop, Tx, "", "No client owns the inner destination address.")               \
  X(DropNoUplink, "drop_no_uplink", Drop, Tx, "",                                                              \
    "The destination's client has no uplink that can carry the packet now (none confirmed, up or with keys).") \
  X(DropTunMalformed, "drop_tun_malformed", Drop, Tx, "",                                                      \
    "A TUN read that is not a well-formed packet behind its virtio_net_hdr.")                                 \
  X(DropTunUnsupported, "drop_tun_unsupported", Drop, Tx, "",                                                  \
    "A TUN super-packet of a kind not cut here (an offload the TUN should not have sent).")                   \
  X(DropTunTooBig, "drop_tun_too_big", Drop, Tx, "", "A TUN packet or segment larger than the tunnel MTU allows.") \
  X(DropQueueFull, "drop_queue_full", Drop, Control, "", "The control thread's queue was full.")               \
  X(DropTxNoRoom, "drop_tx_no_room", Drop, Tx, "",                                                             \
    "A Pong, or a packet's fragments, not sent: too few free transmit slots, or the uplink's socket is gone.")                                \
  X(DropUnexpected, "drop_unexpected", Drop, Rx, "", "A valid packet of a type this side does not take.")      \
  X(DropKeysUsedUp, "drop_keys_used_up", Drop, Tx, "",                                                         \
    "The session's keys sealed their last allowed message (rekey overdue).")                                  \
  X(DropHandshakeMac, "drop_handshake_mac", Drop, Control, "",                                                 \
    "Server: an initiation or path-MTU probe of the wrong length or without a valid mac1.")                   \
  X(DropHandshakeRate, "drop_handshake_rate", Drop, Control, "",                                               \
    "Server: an initiation or probe beyond its rate, or under load with no cookie reply allowed.")            \
  X(DropInKernel, "drop_in_kernel", Drop, Rx, "",                                                              \
    "Dropped by the kernel before it was read: the server's socket filter, a full socket queue.")             \
  X(DropSealFailed, "drop_seal_failed", Drop, Tx, "",                                                          \
    "The cipher library failed to seal a packet (never sent half-sealed).")                                   \
  X(DropStrayHandshake, "drop_stray_handshake", Drop, Control, "",                                             \
    "Client: a handshake or Error packet for no handshake in progress.")                                      \
  X(DropBadFragment, "drop_bad_fragment", Drop, Rx, "",                                                        \
    "A tunnel fragment off the 8-byte grid, overlapping another or past its packet's end: its packet given up.") \
  X(DropFragmentTimeout, "drop_fragment_timeout", Drop, Rx, "",                                                \
    "Packets given up in reassembly: not all their fragments came within a second.")                          \
  X(DropFragmentOverflow, "drop_fragment_overflow", Drop, Rx, "",                                              \
    "Packets given up in reassembly, or fragments dropped, for want of room (32 packets per worker at once).") \
  X(DropNoMemory, "drop_no_memory", Drop, Rx, "",                                                              \
    "No memory for the state a packet's sender or worker needed first (a replay or duplicate window, a scheduler; either direction).")

enum class Counter : std::uint8_t {
#define TRIGLAV_COUNTER_ENUM(e, name, kind, where, metric, help) e,
  TRIGLAV_COUNTERS(TRIGLAV_COUNTER_ENUM)
#undef TRIGLAV_COUNTER_ENUM
  kCount
};
inline constexpr std::size_t kCounters = static_cast<std::size_t>(Counter::kCount);

enum class CounterKind : std::uint8_t { Total, Drop };
enum class CounterWhere : std::uint8_t { Rx, Tx, Control };

struct CounterInfo {
  const char* name;
  CounterKind kind;
  CounterWhere where;
  const char* metric;  // Prometheus family of a Total; "" when shown another way
  const char* help;
};
const CounterInfo& counter_info(Counter c) noexcept;
const char* counter_name(Counter c) noexcept;
const char* counter_where_name(CounterWhere w) noexcept;
// One line per counter, in table order: "name<TAB>total|drop<TAB>rx|tx|control<TAB>help".
std::string counter_list();

struct alignas(64) Counters {
  std::array<std::atomic<std::uint64_t>, kCounters> v{};

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
  std::array<std::uint64_t, kCounters> v{};
  void add(const Counters& c) noexcept;
  std::uint64_t get(Counter c) const noexcept { return v[static_cast<std::size_t>(c)]; }
  // The sum of every Drop counter.
  std::uint64_t drops() const noexcept;
  // "rx_packets=1 rx_bytes=84 ... drop_auth=0 ..." on one line.
  std::string format() const;
};

}  // namespace triglav::dp
