#include "crypto/mac.h"

#include <sodium.h>

namespace triglav::crypto {

Mac keyed_mac(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) noexcept {
  Mac m{};
  crypto_generichash(m.data(), m.size(), data.data(), data.size(), key.data(), key.size());
  return m;
}

Key32 derive_key(std::string_view label, std::span<const std::uint8_t> data) noexcept {
  Key32 k{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, k.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label.data()), label.size());
  crypto_generichash_update(&st, data.data(), data.size());
  crypto_generichash_final(&st, k.data(), k.size());
  return k;
}

bool mac_equal(const std::uint8_t* a, const std::uint8_t* b) noexcept { return sodium_memcmp(a, b, kMacLen) == 0; }

void xseal(const Key32& key, const std::uint8_t nonce[kXNonceLen], std::span<const std::uint8_t> ad,
           std::span<const std::uint8_t> plain, std::uint8_t* out) noexcept {
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, nullptr, plain.data(), plain.size(), ad.data(), ad.size(), nullptr,
                                             nonce, key.data());
}

bool xopen(const Key32& key, const std::uint8_t nonce[kXNonceLen], std::span<const std::uint8_t> ad,
           std::span<const std::uint8_t> sealed, std::uint8_t* out) noexcept {
  if (sealed.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES) return false;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out, nullptr, nullptr, sealed.data(), sealed.size(), ad.data(),
                                                    ad.size(), nonce, key.data()) == 0;
}

}  // namespace triglav::crypto
