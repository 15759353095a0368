#include "crypto/aead.h"

#include <sodium.h>

#include <cstring>

namespace triglav::crypto {

void wipe(void* p, std::size_t n) noexcept { sodium_memzero(p, n); }

void random_bytes(std::span<std::uint8_t> out) noexcept {
  randombytes_buf(out.data(), out.size());
}

bool init() noexcept { return sodium_init() >= 0; }

KeyPair KeyPair::generate() noexcept {
  std::uint8_t priv[kKeyLen];
  randombytes_buf(priv, sizeof priv);
  KeyPair kp = from_private(std::span<const std::uint8_t, kKeyLen>(priv, kKeyLen));
  sodium_memzero(priv, sizeof priv);
  return kp;
}

KeyPair KeyPair::from_private(std::span<const std::uint8_t, kKeyLen> priv) noexcept {
  KeyPair kp;
  kp.priv = SecretKey(priv);
  crypto_scalarmult_base(kp.pub.data(), kp.priv.data());
  return kp;
}

bool x25519(std::span<std::uint8_t, kKeyLen> out, const SecretKey& priv,
            std::span<const std::uint8_t, kKeyLen> pub) noexcept {
  return crypto_scalarmult(out.data(), priv.data(), pub.data()) == 0;
}

void make_nonce(std::uint8_t out[kNonceLen], std::uint64_t counter) noexcept {
  std::memset(out, 0, 4);
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
}

void seal_with_nonce(const std::uint8_t* key, const std::uint8_t nonce[kNonceLen],
                     std::span<const std::uint8_t> ad, std::uint8_t* buf,
                     std::size_t len) noexcept {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(buf, buf + len, nullptr, buf, len,
                                                     ad.data(), ad.size(), nullptr, nonce,
                                                     key);
}

bool open_with_nonce(const std::uint8_t* key, const std::uint8_t nonce[kNonceLen],
                     std::span<const std::uint8_t> ad, std::uint8_t* buf,
                     std::size_t len) noexcept {
  if (len < kTagLen) return false;
  const std::size_t clen = len - kTagLen;
  return crypto_aead_chacha20poly1305_ietf_decrypt_detached(buf, nullptr, buf, clen,
                                                            buf + clen, ad.data(), ad.size(),
                                                            nonce, key) == 0;
}

void seal_in_place(const SecretKey& key, std::uint64_t counter,
                   std::span<const std::uint8_t> ad, std::uint8_t* buf,
                   std::size_t len) noexcept {
  std::uint8_t nonce[kNonceLen];
  make_nonce(nonce, counter);
  seal_with_nonce(key.data(), nonce, ad, buf, len);
}

bool open_in_place(const SecretKey& key, std::uint64_t counter,
                   std::span<const std::uint8_t> ad, std::uint8_t* buf,
                   std::size_t len) noexcept {
  std::uint8_t nonce[kNonceLen];
  make_nonce(nonce, counter);
  return open_with_nonce(key.data(), nonce, ad, buf, len);
}

}  // namespace triglav::crypto
