#include "crypto/noise.h"

#include <sodium.h>

#include <cstring>

#include "crypto/aead.h"

namespace triglav::crypto {
namespace {

constexpr std::size_t kBlockLen = 128;  // BLAKE2b block size, Noise spec 4.3

// HKDF from the Noise spec (section 4.3) with two or three (out3 set) outputs of
// kHashLen bytes.
void hkdf(std::span<const std::uint8_t> ck, std::span<const std::uint8_t> ikm,
          std::uint8_t out1[kHashLen], std::uint8_t out2[kHashLen],
          std::uint8_t* out3 = nullptr) noexcept {
  std::uint8_t temp[kHashLen];
  hmac_blake2b(std::span<std::uint8_t, kHashLen>(temp, kHashLen), ck, ikm);
  const std::uint8_t one = 0x01;
  hmac_blake2b(std::span<std::uint8_t, kHashLen>(out1, kHashLen), {temp, kHashLen}, {&one, 1});
  std::uint8_t buf[kHashLen + 1];
  std::memcpy(buf, out1, kHashLen);
  buf[kHashLen] = 0x02;
  hmac_blake2b(std::span<std::uint8_t, kHashLen>(out2, kHashLen), {temp, kHashLen},
               {buf, sizeof buf});
  if (out3 != nullptr) {
    std::memcpy(buf, out2, kHashLen);
    buf[kHashLen] = 0x03;
    hmac_blake2b(std::span<std::uint8_t, kHashLen>(out3, kHashLen), {temp, kHashLen},
                 {buf, sizeof buf});
  }
  sodium_memzero(temp, sizeof temp);
  sodium_memzero(buf, sizeof buf);
}

}  // namespace

void blake2b(std::span<std::uint8_t, kHashLen> out, std::span<const std::uint8_t> a,
             std::span<const std::uint8_t> b) noexcept {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kHashLen);
  crypto_generichash_update(&st, a.data(), a.size());
  if (!b.empty()) crypto_generichash_update(&st, b.data(), b.size());
  crypto_generichash_final(&st, out.data(), kHashLen);
}

// RFC 2104 HMAC over unkeyed BLAKE2b; libsodium's keyed BLAKE2b is a different function.
void hmac_blake2b(std::span<std::uint8_t, kHashLen> out, std::span<const std::uint8_t> key,
                  std::span<const std::uint8_t> data) noexcept {
  std::uint8_t k[kBlockLen] = {};
  if (key.size() > kBlockLen) {
    blake2b(std::span<std::uint8_t, kHashLen>(k, kHashLen), key);
  } else {
    std::memcpy(k, key.data(), key.size());
  }
  std::uint8_t pad[kBlockLen];
  for (std::size_t i = 0; i < kBlockLen; ++i) pad[i] = k[i] ^ 0x36;
  std::uint8_t inner[kHashLen];
  blake2b(std::span<std::uint8_t, kHashLen>(inner, kHashLen), {pad, kBlockLen}, data);
  for (std::size_t i = 0; i < kBlockLen; ++i) pad[i] = k[i] ^ 0x5c;
  blake2b(out, {pad, kBlockLen}, {inner, kHashLen});
  sodium_memzero(k, sizeof k);
  sodium_memzero(pad, sizeof pad);
  sodium_memzero(inner, sizeof inner);
}

NoiseNk::NoiseNk(bool initiator, bool psk_mode, std::span<const std::uint8_t> prologue) noexcept
    : initiator_(initiator), psk_mode_(psk_mode) {
  // InitializeSymmetric: the name fits in HASHLEN, so h = name padded with zeros.
  static_assert(sizeof kNoisePskProtocolName - 1 <= kHashLen);
  h_.fill(0);
  if (psk_mode)
    std::memcpy(h_.data(), kNoisePskProtocolName, sizeof kNoisePskProtocolName - 1);
  else
    std::memcpy(h_.data(), kNoiseProtocolName, sizeof kNoiseProtocolName - 1);
  std::memcpy(ck_lo_.data(), h_.data(), kKeyLen);
  std::memcpy(ck_hi_.data(), h_.data() + kKeyLen, kKeyLen);
  mix_hash(prologue);
}

NoiseNk NoiseNk::initiator(const PublicKey& responder_static,
                           std::span<const std::uint8_t> prologue) noexcept {
  NoiseNk n(true, false, prologue);
  n.rs_ = responder_static;
  n.mix_hash(n.rs_);  // pre-message "<- s"
  return n;
}

NoiseNk NoiseNk::initiator_psk(const PublicKey& responder_static, std::span<const std::uint8_t> prologue,
                               std::span<const std::uint8_t, kKeyLen> psk) noexcept {
  NoiseNk n(true, true, prologue);
  n.rs_ = responder_static;
  n.mix_hash(n.rs_);
  n.set_psk(psk);
  return n;
}

NoiseNk NoiseNk::responder_psk(std::span<const std::uint8_t, kKeyLen> static_private,
                               std::span<const std::uint8_t> prologue) noexcept {
  NoiseNk n(false, true, prologue);
  n.s_ = KeyPair::from_private(static_private);
  n.mix_hash(n.s_.pub);
  return n;
}

void NoiseNk::set_psk(std::span<const std::uint8_t, kKeyLen> psk) noexcept {
  psk_ = SecretKey(psk);
  has_psk_ = true;
}

NoiseNk NoiseNk::responder(std::span<const std::uint8_t, kKeyLen> static_private,
                           std::span<const std::uint8_t> prologue) noexcept {
  NoiseNk n(false, false, prologue);
  n.s_ = KeyPair::from_private(static_private);
  n.mix_hash(n.s_.pub);
  return n;
}

void NoiseNk::set_ephemeral_for_test(std::span<const std::uint8_t, kKeyLen> priv) noexcept {
  e_ = KeyPair::from_private(priv);
  have_fixed_e_ = true;
}

void NoiseNk::mix_hash(std::span<const std::uint8_t> data) noexcept {
  blake2b(std::span<std::uint8_t, kHashLen>(h_), h_, data);
}

void NoiseNk::mix_key(std::span<const std::uint8_t> ikm) noexcept {
  std::uint8_t ck[kHashLen], o1[kHashLen], o2[kHashLen];
  std::memcpy(ck, ck_lo_.data(), kKeyLen);
  std::memcpy(ck + kKeyLen, ck_hi_.data(), kKeyLen);
  hkdf({ck, kHashLen}, ikm, o1, o2);
  std::memcpy(ck_lo_.data(), o1, kKeyLen);
  std::memcpy(ck_hi_.data(), o1 + kKeyLen, kKeyLen);
  std::memcpy(k_.data(), o2, kKeyLen);  // HASHLEN 64: truncate temp_k to 32 bytes
  n_ = 0;
  has_k_ = true;
  sodium_memzero(ck, sizeof ck);
  sodium_memzero(o1, sizeof o1);
  sodium_memzero(o2, sizeof o2);
}

void NoiseNk::mix_key_and_hash(std::span<const std::uint8_t> ikm) noexcept {
  std::uint8_t ck[kHashLen], o1[kHashLen], o2[kHashLen], o3[kHashLen];
  std::memcpy(ck, ck_lo_.data(), kKeyLen);
  std::memcpy(ck + kKeyLen, ck_hi_.data(), kKeyLen);
  hkdf({ck, kHashLen}, ikm, o1, o2, o3);
  std::memcpy(ck_lo_.data(), o1, kKeyLen);
  std::memcpy(ck_hi_.data(), o1 + kKeyLen, kKeyLen);
  mix_hash({o2, kHashLen});
  std::memcpy(k_.data(), o3, kKeyLen);  // temp_k truncated to 32 bytes
  n_ = 0;
  has_k_ = true;
  sodium_memzero(ck, sizeof ck);
  sodium_memzero(o1, sizeof o1);
  sodium_memzero(o2, sizeof o2);
  sodium_memzero(o3, sizeof o3);
}

// The "e" token: MixHash(e.pub), and in a psk pattern also MixKey(e.pub).
void NoiseNk::mix_ephemeral(const PublicKey& e) noexcept {
  mix_hash(e);
  if (psk_mode_) mix_key(e);
}

bool NoiseNk::encrypt_and_hash(std::span<const std::uint8_t> plain, std::uint8_t* out) noexcept {
  if (!plain.empty()) std::memmove(out, plain.data(), plain.size());
  if (!seal_in_place(k_, n_++, h_, out, plain.size())) return false;
  mix_hash({out, plain.size() + kTagLen});
  return true;
}

bool NoiseNk::decrypt_and_hash(std::span<const std::uint8_t> cipher, std::uint8_t* out) noexcept {
  // out holds only the plaintext (cipher.size() - 16 bytes): decrypt from the message
  // into it rather than in place. The hash covers the ciphertext.
  std::uint8_t nonce[kNonceLen];
  make_nonce(nonce, n_++);
  const std::size_t clen = cipher.size() - kTagLen;
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, nullptr, cipher.data(), clen,
                                                         cipher.data() + clen, h_.data(),
                                                         h_.size(), nonce, k_.data()) != 0)
    return false;
  mix_hash(cipher);
  return true;
}

bool NoiseNk::dh_mix(const SecretKey& priv, const PublicKey& pub) noexcept {
  std::uint8_t shared[kKeyLen];
  const bool ok = x25519(std::span<std::uint8_t, kKeyLen>(shared, kKeyLen), priv, pub);
  if (ok) mix_key({shared, kKeyLen});
  sodium_memzero(shared, sizeof shared);
  return ok;
}

std::optional<std::size_t> NoiseNk::write_message(std::span<const std::uint8_t> payload,
                                                  std::span<std::uint8_t> out) noexcept {
  const bool my_turn = (initiator_ && step_ == 0) || (!initiator_ && step_ == 1);
  const std::size_t need = kKeyLen + payload.size() + kTagLen;
  if (failed_ || !my_turn || out.size() < need || (psk_mode_ && !initiator_ && !has_psk_)) return std::nullopt;
  if (!have_fixed_e_) e_ = KeyPair::generate();
  std::memcpy(out.data(), e_.pub.data(), kKeyLen);
  mix_ephemeral(e_.pub);
  // Message 1: es = DH(e, rs). Message 2: ee = DH(e, re), then psk in NKpsk2.
  if (!dh_mix(e_.priv, initiator_ ? rs_ : re_)) {
    failed_ = true;
    return std::nullopt;
  }
  if (psk_mode_ && !initiator_) mix_key_and_hash(psk_.span());
  if (!encrypt_and_hash(payload, out.data() + kKeyLen)) {
    failed_ = true;
    return std::nullopt;
  }
  ++step_;
  return need;
}

std::optional<std::size_t> NoiseNk::read_message(std::span<const std::uint8_t> msg,
                                                 std::span<std::uint8_t> payload_out) noexcept {
  const bool my_turn = (!initiator_ && step_ == 0) || (initiator_ && step_ == 1);
  if (failed_ || !my_turn || msg.size() < kKeyLen + kTagLen ||
      payload_out.size() < msg.size() - kKeyLen - kTagLen) {
    failed_ = true;
    return std::nullopt;
  }
  std::memcpy(re_.data(), msg.data(), kKeyLen);
  mix_ephemeral(re_);
  // Responder reading message 1: es = DH(s, re). Initiator reading 2: ee = DH(e, re),
  // then psk in NKpsk2.
  bool ok = dh_mix(initiator_ ? e_.priv : s_.priv, re_);
  if (ok && psk_mode_ && initiator_) mix_key_and_hash(psk_.span());
  ok = ok && decrypt_and_hash(msg.subspan(kKeyLen), payload_out.data());
  if (!ok) {
    failed_ = true;
    return std::nullopt;
  }
  ++step_;
  return msg.size() - kKeyLen - kTagLen;
}

TransportKeys NoiseNk::split() const noexcept {
  std::uint8_t ck[kHashLen], o1[kHashLen], o2[kHashLen];
  std::memcpy(ck, ck_lo_.data(), kKeyLen);
  std::memcpy(ck + kKeyLen, ck_hi_.data(), kKeyLen);
  hkdf({ck, kHashLen}, {}, o1, o2);
  TransportKeys t;
  // c1 carries initiator -> responder, c2 the other way.
  const std::uint8_t* send = initiator_ ? o1 : o2;
  const std::uint8_t* recv = initiator_ ? o2 : o1;
  t.send = SecretKey(std::span<const std::uint8_t, kKeyLen>(send, kKeyLen));
  t.recv = SecretKey(std::span<const std::uint8_t, kKeyLen>(recv, kKeyLen));
  sodium_memzero(ck, sizeof ck);
  sodium_memzero(o1, sizeof o1);
  sodium_memzero(o2, sizeof o2);
  return t;
}

}  // namespace triglav::crypto
