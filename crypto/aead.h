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
#include <memory>
#include <span>

#include "crypto/aes_gcm.h"
#include "crypto/key.h"

namespace triglav::crypto {

inline constexpr std::size_t kTagLen = 16;
inline constexpr std::size_t kNonceLen = 12;

// Builds the 12-byte nonce for a 64-bit counter.
void make_nonce(std::uint8_t out[kNonceLen], std::uint64_t counter) noexcept;

// Encrypts buf[0, len) in place and writes the tag to buf[len, len + 16).
// The caller guarantees 16 bytes of tailroom. False when the library failed: the buffer
// is then wiped and must not be sent.
[[nodiscard]] bool seal_in_place(const SecretKey& key, std::uint64_t counter,
                   std::span<const std::uint8_t> ad, std::uint8_t* buf,
                   std::size_t len) noexcept;

// Verifies and decrypts buf[0, len) where the last 16 bytes are the tag. On success the
// plaintext is buf[0, len - 16) and true is returned; on failure buf is unspecified.
[[nodiscard]] bool open_in_place(const SecretKey& key, std::uint64_t counter,
                                 std::span<const std::uint8_t> ad, std::uint8_t* buf,
                                 std::size_t len) noexcept;

// The same with an arbitrary 12-byte nonce, for known-answer tests.
[[nodiscard]] bool seal_with_nonce(const std::uint8_t* key, const std::uint8_t nonce[kNonceLen],
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
// OpenSSL's contexts are per thread and keep the key of their last use. A thread that
// goes idle (a worker before it waits, the control thread each round) calls this, so no
// key outlives its session in them; cheap when the thread holds none.
void forget_thread_keys() noexcept;
// The same, but only when a session's key (a TransportKey) was destroyed since this
// thread last asked: a busy worker calls it every batch (one relaxed load), so a freed
// session's key does not wait in its contexts for the worker to go idle.
void forget_retired_keys() noexcept;
// How many threads' contexts hold a key now (tests).
unsigned contexts_holding_keys() noexcept;
// Tests: the next n OpenSSL seals fail after their in-place update, the one failure
// that cannot be recovered by sealing with libsodium instead.
void inject_seal_failures(unsigned n) noexcept;
// Times both on 1420-byte packets (a few milliseconds); the faster, and the cost per
// packet of each in nanoseconds.
AeadBackend fastest_aead_backend(double* sodium_ns = nullptr, double* openssl_ns = nullptr) noexcept;

// The transport AEAD of a session, agreed in its handshake (docs/PROTOCOL.md). The
// handshake itself always uses ChaCha20-Poly1305.
enum class Cipher : std::uint8_t { ChaCha20Poly1305 = 0, Aes256Gcm = 1 };
const char* cipher_name(Cipher c) noexcept;
// AES-256-GCM needs the CPU's AES and carry-less multiply instructions (crypto/aes_gcm.h).
bool aes256gcm_available() noexcept;
// Times AES-256-GCM on 1420-byte packets like fastest_aead_backend (nanoseconds per
// packet; a huge number when it is not available).
double aes256gcm_ns() noexcept;

// A session's key in one direction: the cipher, the key and, for AES-256-GCM, its
// round keys and powers of H (computed once; all of it wiped when dropped). Const use from any
// number of threads at once. Same nonce layout for both ciphers.
class TransportKey {
 public:
  TransportKey() = default;
  explicit TransportKey(SecretKey key, Cipher c = Cipher::ChaCha20Poly1305) noexcept;
  TransportKey(TransportKey&&) noexcept;
  TransportKey& operator=(TransportKey&&) noexcept;
  ~TransportKey();

  Cipher cipher() const noexcept { return cipher_; }
  // As seal_in_place and open_in_place.
  [[nodiscard]] bool seal(std::uint64_t counter, std::span<const std::uint8_t> ad, std::uint8_t* buf,
                          std::size_t len) const noexcept;
  [[nodiscard]] bool open(std::uint64_t counter, std::span<const std::uint8_t> ad, std::uint8_t* buf,
                          std::size_t len) const noexcept;

 private:
  SecretKey key_;
  Cipher cipher_ = Cipher::ChaCha20Poly1305;
  std::unique_ptr<AesGcm256> aes_;
};

}  // namespace triglav::crypto
