// Handshakes under attack (docs/PROTOCOL.md, "Handshake under load"):
//
//   mac1  every initiation ends with two MACs. mac1 is keyed by a key derived from the
//         server's public key, so the server (its workers, before anything else) drops
//         initiations from whoever does not hold the AuthKey without doing any DH.
//   mac2  keyed by a cookie: a MAC of the sender's address under a server secret that
//         changes every two minutes. Only under load (many initiations per second) does
//         the server require it; an initiation without a valid one gets a cookie reply
//         (smaller than the initiation) instead of a handshake. Spoofed sources never
//         see their cookie, so they cost the server a MAC each, not a DH.
//   rate  under load, initiations with a valid mac2 are limited per source address.
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

namespace triglav::ctl {

// What both ends derive from the server's static public key.
struct HandshakeMacKeys {
  crypto::Key32 mac1{};
  crypto::Key32 cookie{};  // seals cookie replies
  static HandshakeMacKeys for_server(const crypto::PublicKey& server) noexcept;
};

// stamp_initiation and initiation_mac1_ok are in dataplane/wire.h (workers check mac1).

// Client: the cookie in a reply to its initiation with this sender index and mac1.
std::optional<crypto::Mac> open_cookie_reply(std::span<const std::uint8_t> pkt, std::uint32_t sender_index,
                                             std::span<const std::uint8_t, crypto::kMacLen> init_mac1,
                                             const crypto::Key32& cookie_key) noexcept;

struct GuardConfig {
  unsigned load_per_second = 1000;  // initiations per second above which cookies are required
  double rate_per_source = 20;      // under load: initiations per second per source address
  double burst_per_source = 20;
  std::int64_t secret_lifetime_ns = 120'000'000'000;
  std::size_t max_sources = 65536;  // rate-limiter entries
};

// Server side, control thread.
class HandshakeGuard {
 public:
  enum class Verdict : std::uint8_t { Answer, SendCookie, RateLimited };

  HandshakeGuard(const HandshakeMacKeys& keys, const GuardConfig& cfg = {});

  // An initiation (its mac1 already checked) from `from`: answer it, send a cookie
  // reply, or drop it.
  Verdict admit(std::span<const std::uint8_t> pkt, const io::Endpoint& from, std::int64_t now_ns);
  // The cookie reply for an initiation from `from`.
  std::array<std::uint8_t, dp::kCookieReplyLen> cookie_reply(std::span<const std::uint8_t> pkt,
                                                            const io::Endpoint& from, std::int64_t now_ns);
  bool under_load() const noexcept { return under_load_; }
  std::uint64_t cookies_sent() const noexcept { return cookies_sent_; }
  std::uint64_t rate_limited() const noexcept { return rate_limited_; }

 private:
  void rotate(std::int64_t now_ns);
  crypto::Mac cookie_for(const io::Endpoint& from, const crypto::Key32& secret) const noexcept;
  bool allow(const io::Endpoint& from, std::int64_t now_ns);

  HandshakeMacKeys keys_;
  GuardConfig cfg_;
  crypto::Key32 secret_{}, previous_secret_{};
  std::int64_t secret_born_ns_ = -1;
  std::int64_t window_start_ns_ = 0;
  unsigned in_window_ = 0;
  bool under_load_ = false;
  struct Bucket {
    double tokens = 0;
    std::int64_t last_ns = 0;
  };
  std::unordered_map<std::uint64_t, Bucket> buckets_;  // by a hash of the source address
  std::uint64_t cookies_sent_ = 0;
  std::uint64_t rate_limited_ = 0;
};

}  // namespace triglav::ctl
