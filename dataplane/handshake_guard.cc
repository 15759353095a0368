#include "dataplane/handshake_guard.h"

#include <netinet/in.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace triglav::dp {
namespace {

constexpr std::size_t kMac1At = kInitLen - 2 * crypto::kMacLen;
constexpr std::size_t kMac2At = kInitLen - crypto::kMacLen;

}  // namespace

std::array<std::uint8_t, 19> address_bytes(const io::Endpoint& e, bool with_port) noexcept {
  std::array<std::uint8_t, 19> b{};
  if (e.family() == AF_INET6) {
    b[0] = 6;
    std::memcpy(b.data() + 1, &reinterpret_cast<const sockaddr_in6*>(&e.addr)->sin6_addr, 16);
  } else {
    b[0] = 4;
    std::memcpy(b.data() + 1, &reinterpret_cast<const sockaddr_in*>(&e.addr)->sin_addr, 4);
  }
  if (with_port) {
    b[17] = static_cast<std::uint8_t>(e.port() >> 8);
    b[18] = static_cast<std::uint8_t>(e.port());
  }
  return b;
}

HandshakeMacKeys HandshakeMacKeys::for_server(const crypto::PublicKey& server) noexcept {
  HandshakeMacKeys k;
  k.mac1 = crypto::derive_key("triglav mac1 v1", server);
  k.cookie = crypto::derive_key("triglav cookie v1", server);
  return k;
}

std::optional<crypto::Mac> open_cookie_reply(std::span<const std::uint8_t> pkt, std::uint32_t sender_index,
                                             std::span<const std::uint8_t, crypto::kMacLen> init_mac1,
                                             const crypto::Key32& cookie_key) noexcept {
  Header h;
  if (pkt.size() != kCookieReplyLen || decode_header(pkt, h) != HeaderError::Ok ||
      h.type != PacketType::Handshake || h.aux != kHandshakeCookie || h.receiver != sender_index)
    return std::nullopt;
  crypto::Mac cookie{};
  if (!crypto::xopen(cookie_key, pkt.data() + kHeaderLen, init_mac1, pkt.subspan(kHeaderLen + crypto::kXNonceLen),
                     cookie.data()))
    return std::nullopt;
  return cookie;
}

HandshakeGuard::HandshakeGuard(const HandshakeMacKeys& keys, const GuardConfig& cfg) : keys_(keys), cfg_(cfg) {
  crypto::random_bytes(table_key_);
}

void HandshakeGuard::rotate(std::int64_t now_ns) {
  if (secret_born_ns_ >= 0 && now_ns - secret_born_ns_ < cfg_.secret_lifetime_ns) return;
  if (secret_born_ns_ >= 0) previous_secret_ = secret_;
  else crypto::random_bytes(previous_secret_);
  crypto::random_bytes(secret_);
  secret_born_ns_ = now_ns;
}

crypto::Mac HandshakeGuard::cookie_for(const io::Endpoint& from, const crypto::Key32& secret) const noexcept {
  const auto a = address_bytes(from, true);
  return crypto::keyed_mac(secret, a);
}

bool HandshakeGuard::take(Table& t, const io::Endpoint& from, double rate, double burst, std::int64_t now_ns) {
  const auto a = address_bytes(from, false);  // per address: every port of a host shares it
  std::uint64_t key = 0;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&key), a.data(), a.size(), table_key_.data());
  auto it = t.find(key);
  if (it == t.end()) {
    if (t.size() >= cfg_.max_sources) {
      std::erase_if(t, [&](const auto& b) { return now_ns - b.second.last_ns > 1'000'000'000; });
      if (t.size() >= cfg_.max_sources) return false;
    }
    it = t.emplace(key, Bucket{burst, now_ns}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(burst, b.tokens + static_cast<double>(now_ns - b.last_ns) / 1e9 * rate);
  b.last_ns = now_ns;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

bool HandshakeGuard::peek(const Table& t, const io::Endpoint& from, double rate, double burst,
                          std::int64_t now_ns) const {
  const auto a = address_bytes(from, false);
  std::uint64_t key = 0;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&key), a.data(), a.size(), table_key_.data());
  const auto it = t.find(key);
  if (it == t.end()) return burst >= 1;
  return std::min(burst, it->second.tokens + static_cast<double>(now_ns - it->second.last_ns) / 1e9 * rate) >= 1;
}

void HandshakeGuard::count_initiation(std::int64_t now_ns) {
  // Load: initiations in this one-second window, or in the last one, above the limit.
  if (now_ns - window_start_ns_ >= 1'000'000'000) {
    // The window that just ended decides, if it was the last second; an older one
    // (a quiet spell since) says nothing about now.
    under_load_ = now_ns - window_start_ns_ < 2'000'000'000 && in_window_ > cfg_.load_per_second;
    window_start_ns_ = now_ns;
    in_window_ = 0;
    cookies_in_window_ = 0;
  }
  if (++in_window_ > cfg_.load_per_second) under_load_ = true;
}

namespace {
constexpr std::array<std::uint8_t, crypto::kMacLen> kNoMac2{};
bool has_mac2(std::span<const std::uint8_t> pkt) noexcept {
  return pkt.size() == kInitLen && !crypto::mac_equal(pkt.data() + kMac2At, kNoMac2.data());
}
}  // namespace

bool HandshakeGuard::drop_early(std::span<const std::uint8_t> pkt, const io::Endpoint& from, std::int64_t now_ns) {
  if (!under_load_ || now_ns - window_start_ns_ >= 1'000'000'000 || has_mac2(pkt)) return false;
  if (cookies_in_window_ < cfg_.cookies_per_second &&
      peek(cookies_, from, cfg_.cookies_per_source, cfg_.cookie_burst, now_ns))
    return false;
  count_initiation(now_ns);
  return true;
}

HandshakeGuard::Verdict HandshakeGuard::admit(std::span<const std::uint8_t> pkt, const io::Endpoint& from,
                                              std::int64_t now_ns) {
  rotate(now_ns);
  count_initiation(now_ns);
  if (!under_load_) return Verdict::Answer;
  bool mac2_ok = false;
  // No mac2 at all (a client without a cookie, most floods): no MAC to compute.
  if (has_mac2(pkt)) {
    for (const crypto::Key32* s : {&secret_, &previous_secret_}) {
      const crypto::Mac cookie = cookie_for(from, *s);
      const crypto::Mac m2 = crypto::keyed_mac(cookie, pkt.first(kMac2At));
      mac2_ok |= crypto::mac_equal(m2.data(), pkt.data() + kMac2At);
    }
  }
  if (!mac2_ok) {
    if (cookies_in_window_ >= cfg_.cookies_per_second ||
        !take(cookies_, from, cfg_.cookies_per_source, cfg_.cookie_burst, now_ns))
      return Verdict::Drop;
    ++cookies_in_window_;
    return Verdict::SendCookie;
  }
  if (!take(handshakes_, from, cfg_.rate_per_source, cfg_.burst_per_source, now_ns)) return Verdict::RateLimited;
  return Verdict::Answer;
}

std::array<std::uint8_t, kCookieReplyLen> HandshakeGuard::cookie_reply(std::span<const std::uint8_t> pkt,
                                                                      const io::Endpoint& from) {
  std::array<std::uint8_t, kCookieReplyLen> out{};
  Header h;
  (void)decode_header(pkt, h);
  Header r;
  r.type = PacketType::Handshake;
  r.aux = kHandshakeCookie;
  r.receiver = static_cast<std::uint32_t>(h.counter);  // the initiation's sender index
  encode_header(r, out.data());
  std::uint8_t* nonce = out.data() + kHeaderLen;
  crypto::random_bytes({nonce, crypto::kXNonceLen});
  const crypto::Mac cookie = cookie_for(from, secret_);
  crypto::xseal(keys_.cookie, nonce, pkt.subspan(kMac1At, crypto::kMacLen), cookie,
                out.data() + kHeaderLen + crypto::kXNonceLen);
  return out;
}

}  // namespace triglav::dp
