// ChaCha20-Poly1305 IETF (RFC 8439) over byte spans, in place.
//
// Nonce layout, as in Noise and on our wire: 4 zero bytes then the 64-bit counter,
// little-endian. Any thread, no allocation per call.
//
// Two implementations of the same algorithm: libsodium's and OpenSSL's libcrypto (which
// has faster assembly for it on x86-64). The process picks one at start
// (set_aead_backend, before any worker runs); both pass the same vectors.
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

enum class AeadBackend : std::uint8_t { Sodium, OpenSsl };
const char* aead_backend_name(AeadBackend b) noexcept;
// Every seal and open from now on; call before the threads that use them start.
void set_aead_backend(AeadBackend b) noexcept;
AeadBackend aead_backend() noexcept;
// Times both on 1420-byte packets (a few milliseconds); the faster, and the cost per
// packet of each in nanoseconds.
AeadBackend fastest_aead_backend(double* sodium_ns = nullptr, double* openssl_ns = nullptr) noexcept;

}  // namespace triglav::crypto
