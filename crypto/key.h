// Key types. Secrets are non-copyable and wiped when they go out of scope.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace triglav::crypto {

inline constexpr std::size_t kKeyLen = 32;

using PublicKey = std::array<std::uint8_t, kKeyLen>;

// Overwrites memory in a way the compiler may not elide (sodium_memzero).
void wipe(void* p, std::size_t n) noexcept;

// Fills with cryptographically secure random bytes (randombytes_buf).
void random_bytes(std::span<std::uint8_t> out) noexcept;
inline std::uint64_t random_u64() noexcept {
  std::uint64_t v;
  random_bytes({reinterpret_cast<std::uint8_t*>(&v), sizeof v});
  return v;
}

// A 32-byte secret: an X25519 private key or a symmetric AEAD key.
class SecretKey {
 public:
  SecretKey() noexcept { bytes_.fill(0); }
  explicit SecretKey(std::span<const std::uint8_t, kKeyLen> b) noexcept {
    for (std::size_t i = 0; i < kKeyLen; ++i) bytes_[i] = b[i];
  }
  ~SecretKey() { wipe(bytes_.data(), bytes_.size()); }
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  SecretKey(SecretKey&& o) noexcept : bytes_(o.bytes_) { wipe(o.bytes_.data(), kKeyLen); }
  SecretKey& operator=(SecretKey&& o) noexcept {
    if (this != &o) {
      bytes_ = o.bytes_;
      wipe(o.bytes_.data(), kKeyLen);
    }
    return *this;
  }

  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  std::uint8_t* data() noexcept { return bytes_.data(); }
  std::span<const std::uint8_t, kKeyLen> span() const noexcept { return bytes_; }

 private:
  std::array<std::uint8_t, kKeyLen> bytes_;
};

// An X25519 key pair.
struct KeyPair {
  SecretKey priv;
  PublicKey pub{};

  static KeyPair generate() noexcept;
  static KeyPair from_private(std::span<const std::uint8_t, kKeyLen> priv) noexcept;
};

// X25519(priv, pub). Returns false for low-order points (all-zero shared secret).
[[nodiscard]] bool x25519(std::span<std::uint8_t, kKeyLen> out, const SecretKey& priv,
                          std::span<const std::uint8_t, kKeyLen> pub) noexcept;

}  // namespace triglav::crypto
