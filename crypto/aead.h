// ChaCha20-Poly1305 IETF (RFC 8439) over byte spans, in place.
//
// Nonce layout, as in Noise and on our wire: 4 zero bytes then the 64-bit counter,
// little-endian. Pure functions: any thread, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/key.h"

namespace triglav::crypto {

inline constexpr std::size_t kTagLen = 16;
inline constexpr std::size_t kNonceLen = 12;

// Builds the 12-byte nonce for a 64-bit counter.
void make_nonce(std::uint8_t out[kNonceLen], std::uint64_t counter) noexcept;

// Encrypts buf[0, len) in place and writes the tag to buf[len, len + 16).
// The caller guarantees 16 bytes of tailroom.
void seal_in_place(const SecretKey& key, std::uint64_t counter,
                   std::span<const std::uint8_t> ad, std::uint8_t* buf,
                   std::size_t len) noexcept;

// Verifies and decrypts buf[0, len) where the last 16 bytes are the tag. On success the
// plaintext is buf[0, len - 16) and true is returned; on failure buf is unspecified.
[[nodiscard]] bool open_in_place(const SecretKey& key, std::uint64_t counter,
                                 std::span<const std::uint8_t> ad, std::uint8_t* buf,
                                 std::size_t len) noexcept;

// The same with an arbitrary 12-byte nonce, for known-answer tests.
void seal_with_nonce(const std::uint8_t* key, const std::uint8_t nonce[kNonceLen],
                     std::span<const std::uint8_t> ad, std::uint8_t* buf,
                     std::size_t len) noexcept;
[[nodiscard]] bool open_with_nonce(const std::uint8_t* key, const std::uint8_t nonce[kNonceLen],
                                   std::span<const std::uint8_t> ad, std::uint8_t* buf,
                                   std::size_t len) noexcept;

// Must run once before any other function here (sodium_init). Returns false if the
// library cannot initialise.
[[nodiscard]] bool init() noexcept;

}  // namespace triglav::crypto
