// Handshakes under attack (docs/PROTOCOL.md, "Handshake under load"), checked by the
// server's workers before an initiation reaches the control thread:
//
//   mac1  every initiation ends with two MACs. mac1 is keyed by a key derived from the
//         server's public key: initiations from whoever lacks the AuthKey are dropped
//         (drop_handshake_mac) without any DH.
//   mac2  keyed by a cookie: a MAC of the sender's address and port under a secret of
//         the worker that changes every two minutes. Only under load (more initiations a
//         second than the control thread should answer) does the worker require it; an
//         initiation without a valid one gets a cookie reply (smaller than the
//         initiation, at most a few a second per source address) instead of reaching
//         the control thread. Spoofed sources never see their cookie.
//   rate  under load, initiations with a valid mac2 are limited per source
//         (drop_handshake_rate).
//
// A source is an IPv4 address or an IPv6 /64 (io::source_id), and for datagrams the
// server's TCP relay passes on (tcp_fallback), the TCP peer's: one TCP client cannot
// spend everyone's budget. "Under load" is the whole server's view (GuardLoad, shared
// by the workers). The per-source tables have a fixed size and O(1) eviction.
//
// So a flood costs a worker a few MACs per datagram and the control thread nothing:
// its queue stays free for the Pongs and handshakes of real clients.
#pragma once

#include <array>
#include <cstdint>
#include <atomic>
#include <optional>
#include <span>
#include <vector>

#include "crypto/key.h"
#include "crypto/mac.h"
#include "dataplane/counters.h"
#include "dataplane/wire.h"
#include "io/endpoint.h"
#include "io/tcp_relay.h"

namespace triglav::dp {

// What both ends derive from the server's static public key.
struct HandshakeMacKeys {
  crypto::Key32 mac1{};
  crypto::Key32 cookie{};  // seals cookie replies
  static HandshakeMacKeys for_server(const crypto::PublicKey& server) noexcept;
};

// Family byte (4 or 6), the address (16 bytes, IPv4 in the first 4) and, if asked, the
// port (big-endian; else zeros): what cookies, rate limits and address digests key on.
std::array<std::uint8_t, 19> address_bytes(const io::Endpoint& e, bool with_port) noexcept;

// Client: the cookie in a reply to its initiation with this sender index and mac1.
std::optional<crypto::Mac> open_cookie_reply(std::span<const std::uint8_t> pkt, std::uint32_t sender_index,
                                             std::span<const std::uint8_t, crypto::kMacLen> init_mac1,
                                             const crypto::Key32& cookie_key) noexcept;

// Initiations a second over all workers, counted lock-free: each worker adds its own,
// and a second with more than the limit puts every worker under load until a second
// passes with no more than that.
class GuardLoad {
 public:
  // Counts one initiation at now_ns; whether the server is under load.
  bool count(std::int64_t now_ns, unsigned limit) noexcept;
  bool under_load(std::int64_t now_ns, unsigned limit) const noexcept;

 private:
  std::atomic<std::int64_t> second_{-1};  // the window: whole seconds of the monotonic clock
  std::atomic<unsigned> in_second_{0};
  std::atomic<bool> last_over_{false};    // the window before was over the limit
};

// A fixed number of token buckets, 4 to a set by a keyed hash of the source: finding or
// adding one is O(1). A new source takes the set's free or least recently used entry,
// but only one idle for over a second (its bucket would be full again by then); when
// there is none, the new source is refused like one without tokens.
class SourceBuckets {
 public:
  explicit SourceBuckets(std::size_t capacity);
  // Takes a token from key's bucket (rate a second, at most burst); false if none.
  bool take(std::uint64_t key, double rate, double burst, std::int64_t now_ns) noexcept;
  // Whether a token is there, without taking it (nor adding the source).
  bool peek(std::uint64_t key, double rate, double burst, std::int64_t now_ns) const noexcept;
  std::size_t used() const noexcept;

 private:
  struct Entry {
    std::uint64_t key = 0;  // 0: free
    double tokens = 0;
    std::int64_t last_ns = 0;
  };
  std::vector<Entry> e_;
  std::size_t set_mask_ = 0;
};

struct GuardConfig {
  unsigned load_per_second = 1000;  // initiations a second above which cookies are required
  double rate_per_source = 20;      // under load: initiations a second per source address
  double burst_per_source = 20;
  double cookies_per_source = 2;    // cookie replies a second per source address
  double cookie_burst = 5;
  unsigned cookies_per_second = 2000;  // cookie replies a second in all
  std::int64_t secret_lifetime_ns = 120'000'000'000;
  std::size_t max_sources = 65536;  // entries of each per-source table
  GuardLoad* load = nullptr;        // shared by the workers; null: this guard's own
  const io::RelaySources* relay = nullptr;  // server with tcp_fallback: sources behind the relay
};

// One worker's (single-threaded). Its cookie secret is its own: right while each socket
// is read by one worker. Workers sharing a socket would need one shared secret (a
// cookie from one must pass at another) and shared load and rate accounting.
class HandshakeGuard {
 public:
  enum class Verdict : std::uint8_t { Answer, SendCookie, Drop, RateLimited };

  explicit HandshakeGuard(const HandshakeMacKeys& keys, const GuardConfig& cfg = {});

  // An initiation whose mac1 is valid, from `from`: hand it on (Answer), answer it with
  // a cookie reply (SendCookie: cookie_reply() then gives it), or drop it (Drop: no
  // cookie reply allowed now; RateLimited: the source's handshake rate).
  Verdict admit(std::span<const std::uint8_t> pkt, const io::Endpoint& from, std::int64_t now_ns);
  // Before mac1 is checked: true when, under load, an initiation without mac2 could get
  // neither an answer nor a cookie reply (its source's or the global cookie budget is
  // spent), so no MAC needs computing to drop it. It counts toward the load like one
  // that reaches admit(). Budgets are only looked at here, never spent: initiations
  // without a valid mac1 cannot use them up.
  bool drop_early(std::span<const std::uint8_t> pkt, const io::Endpoint& from, std::int64_t now_ns);
  std::array<std::uint8_t, kCookieReplyLen> cookie_reply(std::span<const std::uint8_t> pkt, const io::Endpoint& from);
  bool under_load() const noexcept { return under_load_; }
  std::size_t sources_tracked() const noexcept { return handshakes_.used() + cookies_.used(); }

 private:
  void rotate(std::int64_t now_ns);
  crypto::Mac cookie_for(const io::Endpoint& from, const crypto::Key32& secret) const noexcept;
  // The bucket key of from's source (see above), never 0.
  std::uint64_t source_key(const io::Endpoint& from) const noexcept;
  void count_initiation(std::int64_t now_ns);

  HandshakeMacKeys keys_;
  GuardConfig cfg_;
  crypto::Key32 secret_{}, previous_secret_{}, table_key_{};
  std::int64_t secret_born_ns_ = -1;
  GuardLoad own_load_;  // when the config shares none
  GuardLoad* load_;
  std::int64_t window_start_ns_ = 0;  // this worker's cookie budget: per second
  unsigned cookies_in_window_ = 0;
  bool under_load_ = false;
  SourceBuckets handshakes_, cookies_;
};

// The server's one screen for every unencrypted datagram its workers receive: an
// initiation goes on to the control thread only as the guard allows (and one with a bad
// mac1 only a few times a second, so that a client holding a wrong AuthKey still hears
// why); a path-MTU probe (`triglav diagnose`) is answered here with a 32-byte echo when
// its MAC shows the AuthKey (at most kProbesPerSecond are looked at, none under load);
// anything else (responses, cookie replies and errors are for clients) is dropped.
class HandshakeGate {
 public:
  static constexpr unsigned kBadMacPerSecond = 10;
  static constexpr unsigned kProbesPerSecond = 200;

  struct Outcome {
    enum class Action : std::uint8_t { ToControl, Reply, Drop } action = Action::Drop;
    // What to count (Counter::kCount: nothing): the reason of a Drop, tx_cookie_replies
    // for a Reply once it is sent, drop_handshake_mac for one of the few initiations with
    // a bad mac1 that still go on to the control thread.
    Counter count = Counter::DropUnexpected;
    std::uint8_t len = 0;  // Reply: its length
    std::array<std::uint8_t, kCookieReplyLen> reply;  // its first len bytes (not zeroed: most screens drop)
  };

  explicit HandshakeGate(const HandshakeMacKeys& keys, const GuardConfig& cfg = {});
  Outcome screen(const Header& h, std::span<const std::uint8_t> pkt, const io::Endpoint& from,
                 std::int64_t now_ns);
  const HandshakeGuard& guard() const noexcept { return guard_; }

 private:
  Outcome initiation(std::span<const std::uint8_t> pkt, const io::Endpoint& from, std::int64_t now_ns);
  Outcome probe(const Header& h, std::span<const std::uint8_t> pkt, std::int64_t now_ns);
  static Outcome drop(Counter why) noexcept {
    Outcome o;
    o.count = why;
    return o;
  }

  HandshakeMacKeys keys_;
  HandshakeGuard guard_;
  std::int64_t bad_mac_window_ns_ = 0;
  unsigned bad_mac_passed_ = 0;
  std::int64_t probe_window_ns_ = 0;
  unsigned probes_seen_ = 0;
};

}  // namespace triglav::dp
