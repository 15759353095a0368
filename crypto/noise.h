// Noise_NK_25519_ChaChaPoly_BLAKE2b and Noise_NKpsk2_25519_ChaChaPoly_BLAKE2b (Noise
// revision 34), on libsodium.
//
//   NK:                     NKpsk2:
//     <- s                    <- s
//     ...                     ...
//     -> e, es                -> e, es
//     <- e, ee                <- e, ee, psk
//
// The initiator knows the responder's static public key in advance. In NK the responder
// learns nothing about the initiator; in NKpsk2 both hold a pre-shared key, which the
// responder may choose after reading message 1 (whose payload can name it), and only an
// initiator holding it derives the transport keys. HASH is BLAKE2b-512, HKDF uses HMAC-BLAKE2b
// (block 128 bytes), the cipher is ChaCha20-Poly1305 IETF with nonce 0^32 || LE64(n).
// One object runs one handshake on one thread; after both messages, split() gives the
// transport keys. No I/O, no clock, no logging.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "crypto/key.h"

namespace triglav::crypto {

inline constexpr std::size_t kHashLen = 64;
inline constexpr char kNoiseProtocolName[] = "Noise_NK_25519_ChaChaPoly_BLAKE2b";
inline constexpr char kNoisePskProtocolName[] = "Noise_NKpsk2_25519_ChaChaPoly_BLAKE2b";
// e.pub + AEAD tag: what a message adds to its payload.
inline constexpr std::size_t kNoiseMessageOverhead = kKeyLen + 16;

// BLAKE2b-512 and HMAC-BLAKE2b, exposed for tests.
void blake2b(std::span<std::uint8_t, kHashLen> out, std::span<const std::uint8_t> a,
             std::span<const std::uint8_t> b = {}) noexcept;
void hmac_blake2b(std::span<std::uint8_t, kHashLen> out, std::span<const std::uint8_t> key,
                  std::span<const std::uint8_t> data) noexcept;

struct TransportKeys {
  SecretKey send;  // this side's sending key
  SecretKey recv;  // this side's receiving key
};

class NoiseNk {
 public:
  static NoiseNk initiator(const PublicKey& responder_static,
                           std::span<const std::uint8_t> prologue) noexcept;
  static NoiseNk responder(std::span<const std::uint8_t, kKeyLen> static_private,
                           std::span<const std::uint8_t> prologue) noexcept;
  // NKpsk2. The responder gives its psk with set_psk() between reading message 1 and
  // writing message 2; writing message 2 without one fails.
  static NoiseNk initiator_psk(const PublicKey& responder_static, std::span<const std::uint8_t> prologue,
                               std::span<const std::uint8_t, kKeyLen> psk) noexcept;
  static NoiseNk responder_psk(std::span<const std::uint8_t, kKeyLen> static_private,
                               std::span<const std::uint8_t> prologue) noexcept;
  void set_psk(std::span<const std::uint8_t, kKeyLen> psk) noexcept;

  // Uses a fixed ephemeral private key instead of a random one (test vectors only).
  void set_ephemeral_for_test(std::span<const std::uint8_t, kKeyLen> priv) noexcept;

  // Writes the next handshake message (initiator: message 1, responder: message 2) into
  // out. Returns its length, or nullopt if out is too small, it is not this side's turn,
  // or a DH result is invalid.
  [[nodiscard]] std::optional<std::size_t> write_message(std::span<const std::uint8_t> payload,
                                                         std::span<std::uint8_t> out) noexcept;

  // Reads the peer's next message and decrypts its payload into payload_out. Returns the
  // payload length, or nullopt if the message is malformed or does not authenticate. A
  // failed read leaves the object unusable.
  [[nodiscard]] std::optional<std::size_t> read_message(std::span<const std::uint8_t> msg,
                                                        std::span<std::uint8_t> payload_out) noexcept;

  bool complete() const noexcept { return step_ == 2 && !failed_; }
  const std::array<std::uint8_t, kHashLen>& handshake_hash() const noexcept { return h_; }

  // Transport keys from Split(); only valid once complete().
  [[nodiscard]] TransportKeys split() const noexcept;

 private:
  NoiseNk(bool initiator, bool psk_mode, std::span<const std::uint8_t> prologue) noexcept;
  void mix_hash(std::span<const std::uint8_t> data) noexcept;
  void mix_key(std::span<const std::uint8_t> ikm) noexcept;
  void mix_key_and_hash(std::span<const std::uint8_t> ikm) noexcept;
  void mix_ephemeral(const PublicKey& e) noexcept;
  [[nodiscard]] bool encrypt_and_hash(std::span<const std::uint8_t> plain, std::uint8_t* out) noexcept;
  [[nodiscard]] bool decrypt_and_hash(std::span<const std::uint8_t> cipher,
                                      std::uint8_t* out) noexcept;
  [[nodiscard]] bool dh_mix(const SecretKey& priv, const PublicKey& pub) noexcept;

  bool initiator_;
  bool psk_mode_;
  bool has_psk_ = false;
  bool failed_ = false;
  bool have_fixed_e_ = false;
  int step_ = 0;  // messages processed so far
  std::array<std::uint8_t, kHashLen> h_{};
  SecretKey ck_lo_, ck_hi_;  // chaining key (64 bytes) as two wiped halves
  SecretKey k_;
  std::uint64_t n_ = 0;
  bool has_k_ = false;
  KeyPair s_;    // responder's static
  PublicKey rs_{};  // initiator's view of the responder's static
  KeyPair e_;
  PublicKey re_{};
  SecretKey psk_;
};

}  // namespace triglav::crypto
