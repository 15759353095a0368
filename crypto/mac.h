// Keyed BLAKE2b MACs and labelled key derivation for the handshake's cheap checks
// (docs/PROTOCOL.md, "Handshake under load"), and XChaCha20-Poly1305 for the cookie a
// server sends back. All on libsodium; constant-time comparison.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace triglav::crypto {

inline constexpr std::size_t kMacLen = 16;
using Mac = std::array<std::uint8_t, kMacLen>;
using Key32 = std::array<std::uint8_t, 32>;

// BLAKE2b with a 16-byte output, keyed (1-64 key bytes).
Mac keyed_mac(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) noexcept;
// BLAKE2b-256(label || data).
Key32 derive_key(std::string_view label, std::span<const std::uint8_t> data) noexcept;
// Equal, in time independent of the contents.
[[nodiscard]] bool mac_equal(const std::uint8_t* a, const std::uint8_t* b) noexcept;

inline constexpr std::size_t kXNonceLen = 24;
// XChaCha20-Poly1305 (IETF): out = ciphertext || 16-byte tag.
void xseal(const Key32& key, const std::uint8_t nonce[kXNonceLen], std::span<const std::uint8_t> ad,
           std::span<const std::uint8_t> plain, std::uint8_t* out) noexcept;
[[nodiscard]] bool xopen(const Key32& key, const std::uint8_t nonce[kXNonceLen], std::span<const std::uint8_t> ad,
                         std::span<const std::uint8_t> sealed, std::uint8_t* out) noexcept;

}  // namespace triglav::crypto
