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

bool GuardLoad::count(std::int64_t now_ns, unsigned limit) noexcept {
  const std::int64_t sec = now_ns / 1'000'000'000;
  std::int64_t seen = second_.load(std::memory_order_relaxed);
  if (sec != seen && second_.compare_exchange_strong(seen, sec, std::memory_order_relaxed)) {
    // This worker moved the window on: the second that just ended decides, if it was the
    // one right before (an older one, a quiet spell since, says nothing about now).
    const unsigned ended = in_second_.exchange(0, std::memory_order_relaxed);
    last_over_.store(sec == seen + 1 && ended > limit, std::memory_order_relaxed);
  }
  const unsigned n = in_second_.fetch_add(1, std::memory_order_relaxed) + 1;
  return n > limit || last_over_.load(std::memory_order_relaxed);
}

bool GuardLoad::under_load(std::int64_t now_ns, unsigned limit) const noexcept {
  const std::int64_t sec = now_ns / 1'000'000'000;
  const std::int64_t seen = second_.load(std::memory_order_relaxed);
  if (sec == seen) return last_over_.load(std::memory_order_relaxed) || in_second_.load(std::memory_order_relaxed) > limit;
  return sec == seen + 1 && in_second_.load(std::memory_order_relaxed) > limit;
}

SourceBuckets::SourceBuckets(std::size_t capacity) {
  std::size_t sets = 1;
  while (sets * 4 < capacity) sets <<= 1;
  e_.resize(sets * 4);
  set_mask_ = sets - 1;
}

bool SourceBuckets::take(std::uint64_t key, double rate, double burst, std::int64_t now_ns) noexcept {
  Entry* set = &e_[(key & set_mask_) * 4];
  Entry* hit = nullptr;
  Entry* spare = nullptr;  // free, or idle longest
  for (int i = 0; i < 4; ++i) {
    if (set[i].key == key) {
      hit = &set[i];
      break;
    }
    if (spare == nullptr || set[i].key == 0 || (spare->key != 0 && set[i].last_ns < spare->last_ns)) spare = &set[i];
  }
  if (hit == nullptr) {
    if (spare->key != 0 && now_ns - spare->last_ns <= 1'000'000'000) return false;  // all four busy
    *spare = {key, burst, now_ns};
    hit = spare;
  }
  hit->tokens = std::min(burst, hit->tokens + static_cast<double>(now_ns - hit->last_ns) / 1e9 * rate);
  hit->last_ns = now_ns;
  if (hit->tokens < 1) return false;
  hit->tokens -= 1;
  return true;
}

bool SourceBuckets::peek(std::uint64_t key, double rate, double burst, std::int64_t now_ns) const noexcept {
  const Entry* set = &e_[(key & set_mask_) * 4];
  for (int i = 0; i < 4; ++i)
    if (set[i].key == key)
      return std::min(burst, set[i].tokens + static_cast<double>(now_ns - set[i].last_ns) / 1e9 * rate) >= 1;
  return burst >= 1;
}

std::size_t SourceBuckets::used() const noexcept {
  return static_cast<std::size_t>(std::count_if(e_.begin(), e_.end(), [](const Entry& e) { return e.key != 0; }));
}

HandshakeGuard::HandshakeGuard(const HandshakeMacKeys& keys, const GuardConfig& cfg)
    : keys_(keys),
      cfg_(cfg),
      load_(cfg.load != nullptr ? cfg.load : &own_load_),
      handshakes_(cfg.max_sources),
      cookies_(cfg.max_sources) {
  crypto::random_bytes(table_key_);
}

std::uint64_t HandshakeGuard::source_key(const io::Endpoint& from) const noexcept {
  std::uint64_t id = cfg_.relay != nullptr ? cfg_.relay->of(from) : 0;
  if (id == 0) id = io::source_id(from);
  std::uint64_t key = 0;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&key), reinterpret_cast<const unsigned char*>(&id), sizeof id,
                   table_key_.data());
  return key == 0 ? 1 : key;
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

void HandshakeGuard::count_initiation(std::int64_t now_ns) {
  if (now_ns - window_start_ns_ >= 1'000'000'000) {  // this worker's cookie budget: per second
    window_start_ns_ = now_ns;
    cookies_in_window_ = 0;
  }
  under_load_ = load_->count(now_ns, cfg_.load_per_second);
}

namespace {
constexpr std::array<std::uint8_t, crypto::kMacLen> kNoMac2{};
bool has_mac2(std::span<const std::uint8_t> pkt) noexcept {
  return pkt.size() == kInitLen && !crypto::mac_equal(pkt.data() + kMac2At, kNoMac2.data());
}
}  // namespace

bool HandshakeGuard::drop_early(std::span<const std::uint8_t> pkt, const io::Endpoint& from, std::int64_t now_ns) {
  under_load_ = load_->under_load(now_ns, cfg_.load_per_second);
  if (!under_load_ || now_ns - window_start_ns_ >= 1'000'000'000 || has_mac2(pkt)) return false;
  if (cookies_in_window_ < cfg_.cookies_per_second &&
      cookies_.peek(source_key(from), cfg_.cookies_per_source, cfg_.cookie_burst, now_ns))
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
        !cookies_.take(source_key(from), cfg_.cookies_per_source, cfg_.cookie_burst, now_ns))
      return Verdict::Drop;
    ++cookies_in_window_;
    return Verdict::SendCookie;
  }
  if (!handshakes_.take(source_key(from), cfg_.rate_per_source, cfg_.burst_per_source, now_ns))
    return Verdict::RateLimited;
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

HandshakeGate::HandshakeGate(const HandshakeMacKeys& keys, const GuardConfig& cfg) : keys_(keys), guard_(keys, cfg) {}

HandshakeGate::Outcome HandshakeGate::screen(const Header& h, std::span<const std::uint8_t> pkt,
                                             const io::Endpoint& from, std::int64_t now_ns) {
  if (h.type != PacketType::Handshake) return drop(Counter::DropUnexpected);
  if (h.aux == kHandshakeProbe) return probe(h, pkt, now_ns);
  if (h.aux != kHandshakeInit) return drop(Counter::DropUnexpected);
  return initiation(pkt, from, now_ns);
}

HandshakeGate::Outcome HandshakeGate::initiation(std::span<const std::uint8_t> pkt, const io::Endpoint& from,
                                                 std::int64_t now_ns) {
  if (guard_.drop_early(pkt, from, now_ns)) return drop(Counter::DropHandshakeRate);  // no MAC needed
  if (!initiation_mac1_ok(pkt, keys_.mac1)) {
    if (now_ns - bad_mac_window_ns_ >= 1'000'000'000) {
      bad_mac_window_ns_ = now_ns;
      bad_mac_passed_ = 0;
    }
    // Counted as a drop either way; a few go on so the control thread can say why.
    Outcome o = drop(Counter::DropHandshakeMac);
    if (++bad_mac_passed_ <= kBadMacPerSecond) o.action = Outcome::Action::ToControl;
    return o;
  }
  switch (guard_.admit(pkt, from, now_ns)) {
    case HandshakeGuard::Verdict::Answer: {
      Outcome o;
      o.action = Outcome::Action::ToControl;
      o.count = Counter::kCount;
      return o;
    }
    case HandshakeGuard::Verdict::SendCookie: {
      Outcome o;
      o.action = Outcome::Action::Reply;
      o.count = Counter::TxCookieReplies;
      o.reply = guard_.cookie_reply(pkt, from);
      o.len = static_cast<std::uint8_t>(kCookieReplyLen);
      return o;
    }
    case HandshakeGuard::Verdict::Drop:
    case HandshakeGuard::Verdict::RateLimited: break;
  }
  return drop(Counter::DropHandshakeRate);
}

HandshakeGate::Outcome HandshakeGate::probe(const Header& h, std::span<const std::uint8_t> pkt, std::int64_t now_ns) {
  if (now_ns - probe_window_ns_ >= 1'000'000'000) {
    probe_window_ns_ = now_ns;
    probes_seen_ = 0;
  }
  if (guard_.under_load() || ++probes_seen_ > kProbesPerSecond) return drop(Counter::DropHandshakeRate);
  if (!probe_ok(pkt, keys_.mac1)) return drop(Counter::DropHandshakeMac);
  static_assert(kProbeEchoLen <= kCookieReplyLen);
  const auto echo = probe_echo(static_cast<std::uint32_t>(h.counter), static_cast<std::uint32_t>(pkt.size()), keys_.mac1);
  Outcome o;
  o.action = Outcome::Action::Reply;
  o.count = Counter::kCount;
  std::memcpy(o.reply.data(), echo.data(), echo.size());
  o.len = static_cast<std::uint8_t>(echo.size());
  return o;
}

}  // namespace triglav::dp
