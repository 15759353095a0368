// AES-256-GCM (NIST SP 800-38D, 12-byte nonces, 16-byte tags) on the CPU's AES and
// carry-less multiply instructions, for the transport.
//
// Why our own: neither library in reach uses the 256-bit AES and carry-less multiply
// instructions of current x86-64 CPUs for AES-GCM, and both pay a fixed cost per call
// that matters at packet sizes. This one keeps the round keys and the powers of H
// computed once per key, runs the counter blocks 8 or 16 at a time, two per instruction
// where the CPU has VAES and VPCLMULQDQ, and reduces GHASH once per eight blocks: about
// 4x faster per 1420-byte packet than either library here (docs/PERFORMANCE.md). It
// uses no tables (nothing depends on secret data but the instructions' operands). It is
// checked against the GCM specification's test cases and against libsodium's and
// OpenSSL's AES-256-GCM on random keys, nonces, lengths and associated data
// (tests/crypto/aes_gcm_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace triglav::crypto {

class AesGcm256 {
 public:
  // True on x86-64 CPUs with AES-NI, PCLMULQDQ, SSSE3 and SSE4.1. Nothing else here may
  // be called when it is false.
  static bool supported() noexcept;

  // Uses the 256-bit instructions (VAES, VPCLMULQDQ) where the CPU has them, unless
  // allow_wide is false (tests run both).
  explicit AesGcm256(const std::uint8_t key[32], bool allow_wide = true) noexcept;
  ~AesGcm256();  // wipes the schedule
  AesGcm256(const AesGcm256&) = delete;
  AesGcm256& operator=(const AesGcm256&) = delete;

  // Encrypts buf[0, len) in place and writes the tag to buf[len, len + 16).
  void seal(const std::uint8_t nonce[12], std::span<const std::uint8_t> ad, std::uint8_t* buf,
            std::size_t len) const noexcept;
  // buf[0, len) is ciphertext then tag. Checks the tag first (in constant time) and
  // decrypts only then; on failure buf is unchanged and false is returned.
  [[nodiscard]] bool open(const std::uint8_t nonce[12], std::span<const std::uint8_t> ad, std::uint8_t* buf,
                          std::size_t len) const noexcept;

 private:
  alignas(16) std::uint8_t round_keys_[15 * 16];
  alignas(16) std::uint8_t h_powers_[8 * 16];  // H, H^2 .. H^8 in POLYVAL form
  bool wide_ = false;
};

}  // namespace triglav::crypto
