// A Session is one Noise session: one uplink of one client, with its own keys, and what
// the workers need to seal and open its packets. Sessions belong to a Group (group.h)
// and workers find them through the Snapshot (snapshot.h), which also says who owns
// which part of their state.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "crypto/aead.h"
#include "dataplane/lazy_slots.h"
#include "dataplane/peer_address.h"
#include "dataplane/replay_window.h"
#include "dataplane/wire.h"

namespace triglav::dp {

// A session's keys are used for at most this many messages per sender (the counter has
// 56 bits; 16 senders of 2^56 make the 2^60 a session may carry): sealing refuses beyond
// it. Clients rekey long before, at kRekeyAfterMessages.
inline constexpr std::uint64_t kRejectAfterMessages = kCounterMask;
inline constexpr std::uint64_t kRekeyAfterMessages = std::uint64_t{1} << 48;

struct alignas(64) SenderState {
  // Low 56 bits of the nonce counter. Only the owning sender writes it; the control
  // thread reads it to rekey in time.
  std::atomic<std::uint64_t> next_counter{0};
  std::atomic<std::uint64_t> bytes{0};   // Data bytes sent; the control thread samples it
  std::atomic<std::uint64_t> packets{0};  // Data packets sent
  std::atomic<std::uint64_t> copies{0};   // of those, redundant copies of a packet sent on another uplink too
};

struct Group;

struct Session {
  std::uint32_t local_index = 0;   // receivers put this in packets to us
  std::uint32_t remote_index = 0;  // we put this in packets to the peer
  std::uint8_t uplink = 0;  // the client's uplink id (header field, slot in its Group)
  std::uint8_t socket = 0;  // which of this side's sockets the session uses (client: = uplink)
  crypto::TransportKey tx_key;  // the cipher agreed in the handshake, and its keys
  crypto::TransportKey rx_key;
  // The peer takes Data with kDataChecksumPartial (agreed in the handshake); set before
  // the session is published, read by the workers.
  bool peer_takes_partial = false;
  // The peer takes striped Data (kDataStriped), agreed the same way.
  bool peer_takes_striped = false;
  // The peer takes tunnel fragments (flag::kFragment), agreed the same way.
  bool peer_takes_fragments = false;
  // The peer asks for lost striped packets (Nack) and sends them again when asked
  // (kDataResent), agreed the same way.
  bool peer_takes_repair = false;
  PeerAddress peer;  // where packets go; follows the peer's authenticated source
  // Per sender of ours (a worker, or the control thread): made when it first seals.
  LazySlots<SenderState, kMaxSenders> tx;
  // One replay window per peer sender, made when its first authenticated packet comes.
  LazySlots<ReplayWindow, kMaxSenders> rx_windows;
  std::atomic<std::int64_t> last_rx_ns{0};  // written by workers, read by control
  // Whether the peer has proven it holds the keys, from the address the session sends to.
  // A server's session: set by the receiving worker on the first authenticated packet;
  // until then nothing is sent on it but the handshake response, and a rekeyed session
  // does not replace the one that carries the traffic. A client's session starts so (the
  // handshake response proved the server).
  std::atomic<bool> confirmed{false};
  std::int64_t established_ns = 0;  // control thread: when the handshake completed (monotonic)
  // Inner bytes of authenticated Data received on this session (copies included): what
  // the path delivered. Written by the receiving worker, reported to the peer in Pongs.
  std::atomic<std::uint64_t> rx_bytes{0};
  // Authenticated packets of every type received on this session, and which senders
  // (bit per sender) sent any: with the replay windows' highest counters they tell how
  // many the peer sent up to the last one that arrived, so the peer learns this path's
  // loss from our Pongs (rx_expected).
  std::atomic<std::uint64_t> rx_packets{0};
  std::atomic<std::uint32_t> rx_senders{0};
  Group* group = nullptr;                    // the client this uplink belongs to

  void set_peer(const io::Endpoint& e) noexcept { peer.set(e); }
  io::Endpoint peer_copy() const noexcept { return peer.get(); }
};

// Packets the peer sealed on this session up to the highest counter received from each
// of its senders: against rx_packets, what the path lost on the way (reordered packets
// still in flight count as lost until they arrive).
std::uint64_t rx_expected(const Session& s) noexcept;

// Seals a transport packet in place for the session's peer: writes the header (type,
// ENCRYPTED, uplink, the peer's receiver index, the next counter of `sender`) into
// buf[0, 16) and encrypts buf[16, 16 + body) with the tag after it. Only the thread that
// owns tx[sender] may call it. Returns the datagram's length, or 0 once the sender has
// used the keys for kRejectAfterMessages messages (keys_used_up) or when the cipher
// failed (the buffer is wiped: nothing of it may be sent). aux goes into the header
// (Data: kDataChecksumPartial), and flags besides ENCRYPTED (a fragment's).
std::size_t seal_transport(Session& s, unsigned sender, PacketType type, std::uint8_t* buf,
                           std::size_t body, std::uint8_t aux = 0, std::uint8_t flags = 0) noexcept;
// Whether `sender` has sealed its last allowed message under the session's keys.
bool keys_used_up(const Session& s, unsigned sender) noexcept;

}  // namespace triglav::dp
