#include "crypto/authkey.h"

#include <sodium.h>

namespace triglav::crypto {
namespace {
constexpr std::uint8_t kTypeIpv4 = 1;
constexpr std::uint8_t kTypeIpv6 = 2;
constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
}  // namespace

std::string to_base64url(const std::uint8_t* data, std::size_t len) {
  std::string out(sodium_base64_encoded_len(len, kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, kVariant);
  out.resize(out.size() - 1);  // drop the terminating NUL
  return out;
}

bool from_base64url(std::string_view text, std::vector<std::uint8_t>& out) {
  out.clear();
  if (text.empty()) return true;  // nothing to decode (and libsodium takes no null buffer)
  out.assign(text.size(), 0);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, &end,
                        kVariant) != 0 ||
      end != text.data() + text.size()) {
    return false;
  }
  out.resize(len);
  return true;
}

std::string encode_authkey(const AuthKey& key) {
  std::vector<std::uint8_t> raw(key.server_key.begin(), key.server_key.end());
  for (const auto& a : key.addresses) {
    raw.push_back(a.v6 ? kTypeIpv6 : kTypeIpv4);
    raw.insert(raw.end(), a.ip.begin(), a.ip.begin() + (a.v6 ? 16 : 4));
    raw.push_back(static_cast<std::uint8_t>(a.port >> 8));
    raw.push_back(static_cast<std::uint8_t>(a.port & 0xff));
  }
  return std::string(kAuthKeyPrefix) + to_base64url(raw.data(), raw.size());
}

bool decode_authkey(std::string_view text, AuthKey& out, std::string& error) {
  if (text.substr(0, kAuthKeyPrefix.size()) != kAuthKeyPrefix) {
    error = "AuthKey must start with 'tg1_'";
    return false;
  }
  std::vector<std::uint8_t> raw;
  if (!from_base64url(text.substr(kAuthKeyPrefix.size()), raw)) {
    error = "AuthKey is not valid base64url after 'tg1_'";
    return false;
  }
  if (raw.size() < kKeyLen) {
    error = "AuthKey is truncated: " + std::to_string(raw.size()) +
            " bytes, the server key alone needs 32";
    return false;
  }
  AuthKey k;
  std::copy(raw.begin(), raw.begin() + kKeyLen, k.server_key.begin());
  std::size_t pos = kKeyLen;
  while (pos < raw.size()) {
    const std::size_t n = k.addresses.size() + 1;
    const std::uint8_t type = raw[pos];
    if (type != kTypeIpv4 && type != kTypeIpv6) {
      error = "AuthKey address " + std::to_string(n) + " has unknown type " +
              std::to_string(type) + " (1 = IPv4, 2 = IPv6)";
      return false;
    }
    const std::size_t iplen = type == kTypeIpv6 ? 16 : 4;
    if (raw.size() - pos < 1 + iplen + 2) {
      error = "AuthKey is truncated inside address " + std::to_string(n);
      return false;
    }
    AuthKeyAddress a;
    a.v6 = type == kTypeIpv6;
    std::copy(raw.begin() + pos + 1, raw.begin() + pos + 1 + iplen, a.ip.begin());
    a.port = static_cast<std::uint16_t>(raw[pos + 1 + iplen] << 8 | raw[pos + 2 + iplen]);
    if (a.port == 0) {
      error = "AuthKey address " + std::to_string(n) + " has port 0";
      return false;
    }
    k.addresses.push_back(a);
    pos += 1 + iplen + 2;
  }
  out = std::move(k);
  return true;
}

}  // namespace triglav::crypto
