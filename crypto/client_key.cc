#include "crypto/client_key.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include "crypto/authkey.h"
#include "crypto/noise.h"

namespace triglav::crypto {
namespace {

constexpr std::string_view kIdLabel = "triglav client key id v1";
constexpr std::string_view kPskLabel = "triglav client psk v1";

void derive(std::string_view label, std::span<const std::uint8_t, kKeyLen> secret, std::uint8_t* out,
            std::size_t n) noexcept {
  std::array<std::uint8_t, kHashLen> h{};
  blake2b(h, {reinterpret_cast<const std::uint8_t*>(label.data()), label.size()}, secret);
  std::memcpy(out, h.data(), n);
  wipe(h.data(), h.size());
}

}  // namespace

ClientKey ClientKey::from_secret(std::span<const std::uint8_t, kKeyLen> secret) noexcept {
  ClientKey k;
  k.secret = SecretKey(secret);
  derive(kIdLabel, secret, k.id.data(), k.id.size());
  derive(kPskLabel, secret, k.psk.data(), kKeyLen);
  return k;
}

ClientKey ClientKey::generate() noexcept {
  SecretKey s;
  random_bytes({s.data(), kKeyLen});
  return from_secret(s.span());
}

std::string encode_client_key(const ClientKey& k) {
  return std::string(kClientKeyPrefix) + to_base64url(k.secret.data(), kKeyLen);
}

bool decode_client_key(std::string_view text, ClientKey& out, std::string& error) {
  if (!text.starts_with(kClientKeyPrefix)) {
    error = "a client key starts with " + std::string(kClientKeyPrefix);
    return false;
  }
  std::vector<std::uint8_t> raw;
  if (!from_base64url(text.substr(kClientKeyPrefix.size()), raw)) {
    wipe(raw.data(), raw.size());  // what was decoded before the bad character
    error = "a client key is base64url after " + std::string(kClientKeyPrefix);
    return false;
  }
  if (raw.size() != kKeyLen) {
    error = "a client key holds 32 bytes, this one " + std::to_string(raw.size());
    wipe(raw.data(), raw.size());
    return false;
  }
  out = ClientKey::from_secret(std::span<const std::uint8_t, kKeyLen>(raw.data(), kKeyLen));
  wipe(raw.data(), raw.size());
  return true;
}

std::string client_key_label(const ClientKeyId& id) {
  char b[17];
  for (int i = 0; i < 8; ++i) std::snprintf(b + 2 * i, 3, "%02x", id[static_cast<std::size_t>(i)]);
  return b;
}

}  // namespace triglav::crypto
