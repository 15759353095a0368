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
//   rate  under load, initiations with a valid mac2 are limited per source address
//         (drop_handshake_rate).
//
// So a flood costs a worker a few MACs per datagram and the control thread nothing:
// its queue stays free for the Pongs and handshakes of real clients.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>

#include "crypto/key.h"
#include "crypto/mac.h"
#include "dataplane/wire.h"
#include "io/endpoint.h"

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

struct GuardConfig {
  unsigned load_per_second = 1000;  // initiations a second above which cookies are required
  double rate_per_source = 20;      // under load: initiations a second per source address
  double burst_per_source = 20;
  double cookies_per_source = 2;    // cookie replies a second per source address
  double cookie_burst = 5;
  unsigned cookies_per_second = 2000;  // cookie replies a second in all
  std::int64_t secret_lifetime_ns = 120'000'000'000;
  std::size_t max_sources = 65536;  // entries of each per-source table
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

 private:
  struct Bucket {
    double tokens = 0;
    std::int64_t last_ns = 0;
  };
  using Table = std::unordered_map<std::uint64_t, Bucket>;
  void rotate(std::int64_t now_ns);
  crypto::Mac cookie_for(const io::Endpoint& from, const crypto::Key32& secret) const noexcept;
  bool take(Table& t, const io::Endpoint& from, double rate, double burst, std::int64_t now_ns);
  bool peek(const Table& t, const io::Endpoint& from, double rate, double burst, std::int64_t now_ns) const;
  void count_initiation(std::int64_t now_ns);

  HandshakeMacKeys keys_;
  GuardConfig cfg_;
  crypto::Key32 secret_{}, previous_secret_{}, table_key_{};
  std::int64_t secret_born_ns_ = -1;
  std::int64_t window_start_ns_ = 0;
  unsigned in_window_ = 0;
  unsigned cookies_in_window_ = 0;
  bool under_load_ = false;
  Table handshakes_, cookies_;  // token buckets by a keyed hash of the source address
};

}  // namespace triglav::dp
