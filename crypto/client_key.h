// Client keys: what authorises a client to a server that keeps a list of them.
//
//   tgc1_<base64url, no padding>( secret [32] )
//
// Both ends derive from the secret, with BLAKE2b under distinct labels, a 16-byte key id
// (sent inside the encrypted first handshake message, so the server can find the key
// without trying each) and the 32-byte pre-shared key of the NKpsk2 handshake. See
// docs/PROTOCOL.md, "Client authorisation".
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/key.h"

namespace triglav::crypto {

inline constexpr std::string_view kClientKeyPrefix = "tgc1_";
inline constexpr std::size_t kClientKeyIdLen = 16;
using ClientKeyId = std::array<std::uint8_t, kClientKeyIdLen>;

struct ClientKey {
  SecretKey secret;
  ClientKeyId id{};
  SecretKey psk;

  static ClientKey generate() noexcept;
  static ClientKey from_secret(std::span<const std::uint8_t, kKeyLen> secret) noexcept;
};

std::string encode_client_key(const ClientKey& k);
// On failure returns false and sets error to one sentence (prefix, encoding, length).
[[nodiscard]] bool decode_client_key(std::string_view text, ClientKey& out, std::string& error);

// The first 8 bytes of the id as hex: how logs and status name a client key.
std::string client_key_label(const ClientKeyId& id);

}  // namespace triglav::crypto
