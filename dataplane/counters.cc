#include "dataplane/counters.h"

namespace triglav::dp {

const char* counter_name(Counter c) noexcept {
  switch (c) {
    case Counter::RxPackets: return "rx_packets";
    case Counter::RxBytes: return "rx_bytes";
    case Counter::TxPackets: return "tx_packets";
    case Counter::TxBytes: return "tx_bytes";
    case Counter::HandshakePackets: return "handshake_packets";
    case Counter::TunWriteErrors: return "tun_write_errors";
    case Counter::UdpSendErrors: return "udp_send_errors";
    case Counter::RxNoBuffers: return "rx_no_buffers";
    case Counter::TunReadPackets: return "tun_read_packets";
    case Counter::TxRedundantCopies: return "tx_redundant_copies";
    case Counter::TxGsoSends: return "tx_gso_sends";
    case Counter::RxGroReceives: return "rx_gro_receives";
    case Counter::TunGsoReads: return "tun_gso_reads";
    case Counter::TunGroWrites: return "tun_gro_writes";
    case Counter::BenchGenerated: return "bench_generated";
    case Counter::TunLocalIgnored: return "tun_local_ignored";
    case Counter::TxCookieReplies: return "tx_cookie_replies";
    case Counter::DropMalformed: return "drop_malformed";
    case Counter::DropUnknownIndex: return "drop_unknown_index";
    case Counter::DropAuth: return "drop_auth";
    case Counter::DropReplay: return "drop_replay";
    case Counter::DropDuplicate: return "drop_duplicate";
    case Counter::DropBadInner: return "drop_bad_inner";
    case Counter::DropBadSource: return "drop_bad_source";
    case Counter::DropNoRoute: return "drop_no_route";
    case Counter::DropQueueFull: return "drop_queue_full";
    case Counter::DropUnexpected: return "drop_unexpected";
    case Counter::DropKeysUsedUp: return "drop_keys_used_up";
    case Counter::DropHandshakeMac: return "drop_handshake_mac";
    case Counter::DropHandshakeRate: return "drop_handshake_rate";
    case Counter::DropInKernel: return "drop_in_kernel";
    case Counter::DropSealFailed: return "drop_seal_failed";
    case Counter::DropStrayHandshake: return "drop_stray_handshake";
    case Counter::kCount: break;
  }
  return "?";
}

void CounterTotals::add(const Counters& c) noexcept {
  for (std::size_t i = 0; i < v.size(); ++i) v[i] += c.v[i].load(std::memory_order_relaxed);
}

std::uint64_t CounterTotals::drops() const noexcept {
  std::uint64_t n = 0;
  for (auto i = static_cast<std::size_t>(Counter::DropMalformed); i < v.size(); ++i) n += v[i];
  return n;
}

std::string CounterTotals::format() const {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!s.empty()) s += ' ';
    s += counter_name(static_cast<Counter>(i));
    s += '=';
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace triglav::dp
