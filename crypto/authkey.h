// The AuthKey: what a client needs to reach and authenticate a server, as one string.
//
//   tg1_<base64url, no padding>( server static public key [32]
//                                { type [1] | address [4 or 16] | port [2, big-endian] }* )
//
// type 1 = IPv4, type 2 = IPv6. See docs/PROTOCOL.md.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/key.h"

namespace triglav::crypto {

inline constexpr std::string_view kAuthKeyPrefix = "tg1_";

struct AuthKeyAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> ip{};  // IPv4 uses the first 4 bytes, network order
  std::uint16_t port = 0;             // host order

  bool operator==(const AuthKeyAddress&) const = default;
};

struct AuthKey {
  PublicKey server_key{};
  std::vector<AuthKeyAddress> addresses;

  bool operator==(const AuthKey&) const = default;
};

std::string encode_authkey(const AuthKey& key);

// Parses an AuthKey. On failure returns false and sets error to one sentence that names
// the problem (prefix, encoding, truncation, address type, port).
[[nodiscard]] bool decode_authkey(std::string_view text, AuthKey& out, std::string& error);

// Standard base64url without padding, for key files.
std::string to_base64url(const std::uint8_t* data, std::size_t len);
[[nodiscard]] bool from_base64url(std::string_view text, std::vector<std::uint8_t>& out);

}  // namespace triglav::crypto
