// Probing the uplink sessions (control thread, client and server alike): a Ping per
// session every probe interval, every busy interval while the uplink carries data (so a
// path that dies under traffic is noticed quickly), and every fast interval while the
// last probe failed or the uplink is not Healthy; the Pong's echoed send time gives an RTT sample. A probe
// not answered within max(RTO, min timeout) is a failure. PathStats and Health turn the
// outcomes into the UplinkView the schedulers read; silence long enough to reach Down
// tells the client to handshake that uplink again.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>

#include "control/status.h"
#include "dataplane/health.h"
#include "dataplane/path_stats.h"
#include "dataplane/scheduler.h"
#include "dataplane/snapshot.h"
#include "io/clock.h"

namespace triglav::ctl {

// Strategy aggregate probes busy uplinks at least this often (see probe_config).
inline constexpr std::int64_t kStripeBusyProbeNs = 100'000'000;

struct ProbeConfig {
  std::int64_t interval_ns = 1'000'000'000;
  std::int64_t busy_interval_ns = 250'000'000;  // capped at interval_ns
  std::int64_t fast_interval_ns = 50'000'000;
  double min_timeout_ms = 100;
};

class Prober {
 public:
  explicit Prober(const ProbeConfig& cfg = {}) : cfg_(cfg) {}

  // Striping leaves an uplink whose packet loss reached kLossyEnter while its queue on the
  // way out was short or well below the largest seen (a loss of the path itself, not a
  // full buffer's), until the loss fades below kLossyExit. It takes kLossyStreak such
  // samples in a row, none within kCongestedNs of a Pong that showed a full queue: a
  // burst of tail drops also drops the probes that would show its queue (a flow's start
  // overshooting). It is left for at least a hold: kLossyHoldNs the first time, doubled
  // each time it turns lossy again within kLossyMemoryNs of being tried again (a path
  // that keeps losing costs the flows a loss event per try), up to kLossyMaxHoldNs.
  static constexpr double kLossyEnter = 0.01, kLossyExit = 0.005;
  static constexpr unsigned kLossyStreak = 3;
  static constexpr std::int64_t kCongestedNs = 1'000'000'000;

  // A new path: its first probe after first_probe_ns (default: a short delay, so that
  // the peer has installed its end of the session first).
  void add(dp::Session* s, std::int64_t now_ns, std::int64_t first_probe_ns = -1);
  void remove(const dp::Session* s);
  // n packets sent on the session are known lost for reasons of our own (path-MTU
  // probes of a size too big): the next packet counts from the peer do not count them
  // as the path's loss.
  void excuse_lost(const dp::Session* s, std::uint64_t n);
  void clear() {
    paths_.clear();
    aliases_.clear();
  }
  // A rekey replaced `old` by `next` on the same path: the measurements, health and byte
  // counts carry over, and Pongs still arriving on `old` count for `next` (until `old`
  // is removed).
  void rekey(const dp::Session* old, dp::Session* next, std::int64_t now_ns);

  // Sends due probes through `send(session, body)`, times out unanswered ones and samples
  // throughput. Returns true if some uplink changed health state, turned suspect, or
  // turned lossy or back.
  bool tick(std::int64_t now_ns, const std::function<void(dp::Session&, std::uint64_t)>& send);
  // A Pong for the session with this receiver index, with the Data bytes the peer has
  // received on it when the Pong carries them. True if its state changed.
  // peer_packets: the packets the peer received on the session and those we sent up to
  // the last it received, when the Pong carries them (the path's packet loss).
  struct PeerPackets {
    std::uint64_t received = 0, expected = 0;
  };
  bool on_pong(std::uint32_t local_index, std::uint64_t body, std::int64_t now_ns,
               std::optional<std::uint64_t> peer_rx_bytes = std::nullopt,
               std::optional<PeerPackets> peer_packets = std::nullopt,
               std::optional<std::int64_t> peer_answer_ns = std::nullopt);
  // The same from a Pong's body as it came (docs/PROTOCOL.md: the echoed 8 bytes, then
  // optionally the peer's received-bytes count, then optionally its packet counts, then
  // optionally its clock as it answered).
  // False for a body too short to match.
  bool on_pong(std::uint32_t local_index, std::span<const std::uint8_t> body, std::int64_t now_ns);
  // Kernel link events for an uplink's interface.
  bool on_link(const dp::Session* s, bool up);

  dp::UplinkView view(const dp::Session* s) const;
  // The session's measurements, health, Data bytes sent and peer, for status.
  void fill(UplinkStatus& out, const dp::Session& s) const;
  dp::HealthState state(const dp::Session* s) const;

 private:
  struct Path {
    dp::Session* session = nullptr;
    dp::PathStats stats;
    dp::Health health;
    bool outstanding = false;
    std::uint64_t sent_ns = 0;  // the body of the outstanding probe
    std::int64_t next_probe_ns = 0;
    std::int64_t healthy_since_ns = -1;
    std::uint64_t last_bytes = 0;
    std::uint64_t probe_bytes = 0;  // Data bytes sent when the last probe went out
    std::uint64_t peer_rx = 0;      // the peer's received-bytes count at the last Pong
    std::int64_t peer_rx_ns = -1;   // when it arrived (-1: none yet)
    std::uint64_t sent_at_peer_rx = 0;  // our Data bytes sent by then
    bool busy = false;              // Data was sent between the last two probes
    std::int64_t last_bytes_ns = 0;
    std::uint64_t bytes_before = 0;  // Data bytes sent on the path's earlier sessions (rekeys)
    std::uint64_t packets_before = 0, copies_before = 0, rx_before = 0;  // and the same of these
    std::uint64_t delivered_before = 0;  // the peer's received-bytes counts of those sessions
    std::optional<PeerPackets> peer_packets;  // the counts of the current session's last Pong
    std::uint64_t excused = 0;  // lost packets not to count against the path (excuse_lost)
    bool lossy = false;  // UplinkView::lossy
    unsigned loss_streak = 0;  // loss samples in a row at kLossyEnter or more, with no full queue
    std::int64_t congested_ns = -1;  // when a Pong last showed a full queue
    std::int64_t lossy_until_ns = 0;  // left at least until then
    std::int64_t lossy_hold_ns = 0;   // the last hold (0: none lately)
    std::int64_t lossy_left_ns = -1;  // when it was last tried again
    double packet_loss = 0;  // as of the last Pong or tick
  };
  static constexpr std::int64_t kLossyHoldNs = 2'000'000'000, kLossyMaxHoldNs = 32'000'000'000,
                                kLossyMemoryNs = 30'000'000'000;
  static bool congested(const Path& p);
  static bool update_lossy(Path& p, std::int64_t now_ns);
  static dp::UplinkView view_of(const Path& p);
  static std::uint64_t total_tx(const Path& p);
  Path* find(std::uint32_t local_index);
  std::int64_t timeout_ns(const Path& p) const;
  void reschedule(Path& p, std::int64_t now_ns);
  static void note_state(Path& p, dp::HealthState before, std::int64_t now_ns);

  ProbeConfig cfg_;
  std::unordered_map<std::uint32_t, Path> paths_;  // by session receiver index
  std::unordered_map<std::uint32_t, std::uint32_t> aliases_;  // a rekeyed session's old index -> new
};

using io::monotonic_ns;

}  // namespace triglav::ctl
