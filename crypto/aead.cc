#include "crypto/aead.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

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

namespace {

void sodium_seal(const std::uint8_t* key, const std::uint8_t* nonce, std::span<const std::uint8_t> ad,
                 std::uint8_t* buf, std::size_t len) noexcept {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(buf, buf + len, nullptr, buf, len, ad.data(), ad.size(),
                                                     nullptr, nonce, key);
}

bool sodium_open(const std::uint8_t* key, const std::uint8_t* nonce, std::span<const std::uint8_t> ad,
                 std::uint8_t* buf, std::size_t clen) noexcept {
  return crypto_aead_chacha20poly1305_ietf_decrypt_detached(buf, nullptr, buf, clen, buf + clen, ad.data(),
                                                            ad.size(), nonce, key) == 0;
}

// One context per thread and direction, set up for the cipher once; each call only
// sets key and nonce. A context keeps the key of its last call: forget_thread_keys()
// clears it when the thread goes idle (held counts the contexts holding a key).
std::atomic<unsigned> g_contexts_with_keys{0};

struct EvpContext {
  EVP_CIPHER_CTX* ctx = nullptr;
  bool encrypt;
  bool holds_key = false;
  explicit EvpContext(bool enc) : encrypt(enc) { setup(); }
  ~EvpContext() {
    forget();
    EVP_CIPHER_CTX_free(ctx);
  }
  void setup() {
    if (ctx == nullptr) ctx = EVP_CIPHER_CTX_new();
    if (ctx != nullptr && EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      ctx = nullptr;
    }
  }
  void used() {
    if (holds_key) return;
    holds_key = true;
    g_contexts_with_keys.fetch_add(1, std::memory_order_relaxed);
  }
  // Keys the context afresh with an all-zero key and nonce: the key and the state derived
  // from it are overwritten in place (no allocation, unlike a reset and a new set-up).
  void forget() {
    if (!holds_key) return;
    holds_key = false;
    g_contexts_with_keys.fetch_sub(1, std::memory_order_relaxed);
    static constexpr std::uint8_t kZeroKey[32] = {}, kZeroNonce[kNonceLen] = {};
    if (ctx != nullptr && EVP_CipherInit_ex(ctx, nullptr, nullptr, kZeroKey, kZeroNonce, encrypt ? 1 : 0) != 1) {
      EVP_CIPHER_CTX_free(ctx);  // cannot overwrite it: drop it (the next use falls back to libsodium)
      ctx = nullptr;
    }
  }
};

EvpContext& seal_context() {
  thread_local EvpContext e(true);
  return e;
}
EvpContext& open_context() {
  thread_local EvpContext d(false);
  return d;
}

std::atomic<unsigned> g_injected_seal_failures{0};
// Bumped whenever a TransportKey is destroyed while some context holds a key
// (forget_retired_keys).
std::atomic<std::uint64_t> g_key_epoch{0};

// Takes one injected failure, if any is left (tests only; a relaxed load otherwise).
bool injected_failure() noexcept {
  unsigned n = g_injected_seal_failures.load(std::memory_order_relaxed);
  while (n > 0)
    if (g_injected_seal_failures.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return true;
  return false;
}

// False when OpenSSL failed. Before the buffer is touched, libsodium seals it instead;
// once the in-place update ran the buffer holds keystream-XORed bytes, and sealing those
// again under the same key and nonce would cancel the keystream and send plaintext: the
// buffer is wiped and the caller drops the packet.
bool openssl_seal(const std::uint8_t* key, const std::uint8_t* nonce, std::span<const std::uint8_t> ad,
                  std::uint8_t* buf, std::size_t len) noexcept {
  EvpContext& e = seal_context();
  int n = 0;
  if (e.ctx != nullptr) e.used();
  if (e.ctx == nullptr || EVP_EncryptInit_ex(e.ctx, nullptr, nullptr, key, nonce) != 1 ||
      (!ad.empty() && EVP_EncryptUpdate(e.ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size())) != 1)) {
    sodium_seal(key, nonce, ad, buf, len);  // the buffer is still plaintext
    return true;
  }
  if ((len > 0 && EVP_EncryptUpdate(e.ctx, buf, &n, buf, static_cast<int>(len)) != 1) ||
      EVP_EncryptFinal_ex(e.ctx, buf + len, &n) != 1 || injected_failure() ||
      EVP_CIPHER_CTX_ctrl(e.ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagLen), buf + len) != 1) {
    sodium_memzero(buf, len + kTagLen);
    return false;
  }
  return true;
}

bool openssl_open(const std::uint8_t* key, const std::uint8_t* nonce, std::span<const std::uint8_t> ad,
                  std::uint8_t* buf, std::size_t clen) noexcept {
  EvpContext& d = open_context();
  int n = 0;
  if (d.ctx == nullptr) return sodium_open(key, nonce, ad, buf, clen);
  d.used();
  std::uint8_t tag[kTagLen];
  std::memcpy(tag, buf + clen, kTagLen);
  if (EVP_DecryptInit_ex(d.ctx, nullptr, nullptr, key, nonce) != 1) return false;
  if (!ad.empty() && EVP_DecryptUpdate(d.ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size())) != 1) return false;
  if (clen > 0 && EVP_DecryptUpdate(d.ctx, buf, &n, buf, static_cast<int>(clen)) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(d.ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagLen), tag) != 1) return false;
  std::uint8_t fin[16];
  return EVP_DecryptFinal_ex(d.ctx, fin, &n) == 1;
}

std::atomic<AeadBackend> g_backend{AeadBackend::Sodium};

}  // namespace

const char* aead_backend_name(AeadBackend b) noexcept { return b == AeadBackend::OpenSsl ? "openssl" : "libsodium"; }
void set_aead_backend(AeadBackend b) noexcept { g_backend.store(b, std::memory_order_relaxed); }
AeadBackend aead_backend() noexcept { return g_backend.load(std::memory_order_relaxed); }

void forget_thread_keys() noexcept {
  if (g_contexts_with_keys.load(std::memory_order_relaxed) == 0) return;  // nobody used OpenSSL
  seal_context().forget();
  open_context().forget();
}

void forget_retired_keys() noexcept {
  thread_local std::uint64_t seen = 0;
  const std::uint64_t now = g_key_epoch.load(std::memory_order_relaxed);
  if (now == seen) return;
  seen = now;
  forget_thread_keys();
}

unsigned contexts_holding_keys() noexcept { return g_contexts_with_keys.load(std::memory_order_relaxed); }

void inject_seal_failures(unsigned n) noexcept { g_injected_seal_failures.store(n, std::memory_order_relaxed); }

bool seal_with_nonce(const std::uint8_t* key, const std::uint8_t nonce[kNonceLen],
                     std::span<const std::uint8_t> ad, std::uint8_t* buf,
                     std::size_t len) noexcept {
  if (aead_backend() == AeadBackend::OpenSsl) return openssl_seal(key, nonce, ad, buf, len);
  sodium_seal(key, nonce, ad, buf, len);
  return true;
}

bool open_with_nonce(const std::uint8_t* key, const std::uint8_t nonce[kNonceLen],
                     std::span<const std::uint8_t> ad, std::uint8_t* buf,
                     std::size_t len) noexcept {
  if (len < kTagLen) return false;
  const std::size_t clen = len - kTagLen;
  if (aead_backend() == AeadBackend::OpenSsl) return openssl_open(key, nonce, ad, buf, clen);
  return sodium_open(key, nonce, ad, buf, clen);
}

AeadBackend fastest_aead_backend(double* sodium_ns, double* openssl_ns) noexcept {
  constexpr std::size_t kLen = 1420;
  constexpr int kRounds = 2000;
  std::uint8_t key[32], nonce[kNonceLen] = {}, ad[16] = {};
  randombytes_buf(key, sizeof key);
  std::vector<std::uint8_t> buf(kLen + kTagLen, 0x5a);
  auto time = [&](auto seal) {
    double best = 1e18;
    for (int trial = 0; trial < 3; ++trial) {  // the best of three: noise only slows
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kRounds; ++i) {
        nonce[4] = static_cast<std::uint8_t>(i);
        (void)seal(key, nonce, std::span<const std::uint8_t>(ad, sizeof ad), buf.data(), kLen);
      }
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kRounds;
      best = std::min(best, ns);
    }
    return best;
  };
  const double s = time(sodium_seal);
  const double o = time(openssl_seal);
  if (sodium_ns != nullptr) *sodium_ns = s;
  if (openssl_ns != nullptr) *openssl_ns = o;
  return o < s ? AeadBackend::OpenSsl : AeadBackend::Sodium;
}

bool seal_in_place(const SecretKey& key, std::uint64_t counter,
                   std::span<const std::uint8_t> ad, std::uint8_t* buf,
                   std::size_t len) noexcept {
  std::uint8_t nonce[kNonceLen];
  make_nonce(nonce, counter);
  return seal_with_nonce(key.data(), nonce, ad, buf, len);
}

bool open_in_place(const SecretKey& key, std::uint64_t counter,
                   std::span<const std::uint8_t> ad, std::uint8_t* buf,
                   std::size_t len) noexcept {
  std::uint8_t nonce[kNonceLen];
  make_nonce(nonce, counter);
  return open_with_nonce(key.data(), nonce, ad, buf, len);
}

const char* cipher_name(Cipher c) noexcept {
  return c == Cipher::Aes256Gcm ? "AES-256-GCM" : "ChaCha20-Poly1305";
}

bool aes256gcm_available() noexcept { return AesGcm256::supported(); }

TransportKey::TransportKey(SecretKey key, Cipher c) noexcept : key_(std::move(key)), cipher_(c) {
  if (c != Cipher::Aes256Gcm) return;
  aes_ = std::make_unique<AesGcm256>(key_.data());
}

TransportKey::TransportKey(TransportKey&& o) noexcept
    : key_(std::move(o.key_)), cipher_(o.cipher_), aes_(std::move(o.aes_)) {}

TransportKey& TransportKey::operator=(TransportKey&& o) noexcept {
  if (this != &o) {
    key_ = std::move(o.key_);
    cipher_ = o.cipher_;
    aes_ = std::move(o.aes_);
  }
  return *this;
}

// A session's keys going away: every thread's OpenSSL contexts forget what they hold
// at their next forget_retired_keys() (the context may hold this very key).
TransportKey::~TransportKey() {
  if (g_contexts_with_keys.load(std::memory_order_relaxed) != 0) g_key_epoch.fetch_add(1, std::memory_order_relaxed);
}

bool TransportKey::seal(std::uint64_t counter, std::span<const std::uint8_t> ad, std::uint8_t* buf,
                        std::size_t len) const noexcept {
  if (!aes_) return seal_in_place(key_, counter, ad, buf, len);
  std::uint8_t nonce[kNonceLen];
  make_nonce(nonce, counter);
  aes_->seal(nonce, ad, buf, len);
  return true;
}

bool TransportKey::open(std::uint64_t counter, std::span<const std::uint8_t> ad, std::uint8_t* buf,
                        std::size_t len) const noexcept {
  if (!aes_) return open_in_place(key_, counter, ad, buf, len);
  std::uint8_t nonce[kNonceLen];
  make_nonce(nonce, counter);
  return aes_->open(nonce, ad, buf, len);
}

double aes256gcm_ns() noexcept {
  if (!aes256gcm_available()) return 1e18;
  constexpr std::size_t kLen = 1420;
  constexpr int kRounds = 2000;
  std::uint8_t k[32], ad[16] = {};
  randombytes_buf(k, sizeof k);
  const TransportKey key(SecretKey(std::span<const std::uint8_t, kKeyLen>(k, kKeyLen)), Cipher::Aes256Gcm);
  sodium_memzero(k, sizeof k);
  std::vector<std::uint8_t> buf(kLen + kTagLen, 0x5a);
  double best = 1e18;
  for (int trial = 0; trial < 3; ++trial) {  // the best of three, as for ChaCha20-Poly1305
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) (void)key.seal(static_cast<std::uint64_t>(i), {ad, sizeof ad}, buf.data(), kLen);
    best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kRounds);
  }
  return best;
}

}  // namespace triglav::crypto
