// Sealing cost per packet: our in-place seal (header as associated data, counter nonce)
// next to the raw libsodium call it wraps, which is its ceiling; and the raw one-shot
// AEADs a bulk backend could use: ChaCha20-Poly1305 and AES-256-GCM from libsodium and
// from OpenSSL's libcrypto (the comparison behind keeping ChaCha20-Poly1305).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <vector>

#include "crypto/aead.h"
#include "dataplane/wire.h"

namespace {

using namespace triglav;

void BM_SealInPlace(benchmark::State& state) {
  (void)crypto::init();
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto batch = static_cast<std::size_t>(state.range(1));
  crypto::KeyPair k = crypto::KeyPair::generate();
  std::vector<std::vector<std::uint8_t>> bufs(batch, std::vector<std::uint8_t>(dp::kHeaderLen + size + 16));
  std::uint64_t counter = 0;
  for (auto _ : state) {
    for (auto& b : bufs) {
      (void)crypto::seal_in_place(k.priv, counter++, {b.data(), dp::kHeaderLen}, b.data() + dp::kHeaderLen, size);
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * batch * size));
}

void BM_OpenInPlace(benchmark::State& state) {
  (void)crypto::init();
  const auto size = static_cast<std::size_t>(state.range(0));
  crypto::KeyPair k = crypto::KeyPair::generate();
  std::vector<std::uint8_t> sealed(dp::kHeaderLen + size + 16), b;
  (void)crypto::seal_in_place(k.priv, 1, {sealed.data(), dp::kHeaderLen}, sealed.data() + dp::kHeaderLen, size);
  for (auto _ : state) {
    b = sealed;
    benchmark::DoNotOptimize(
        crypto::open_in_place(k.priv, 1, {b.data(), dp::kHeaderLen}, b.data() + dp::kHeaderLen, size + 16));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void BM_RawLibsodium(benchmark::State& state) {
  (void)crypto::init();
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> key(32, 1), nonce(12, 0), ad(16, 2), buf(size + 16);
  for (auto _ : state) {
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(buf.data(), buf.data() + size, nullptr, buf.data(), size,
                                                       ad.data(), ad.size(), nullptr, nonce.data(), key.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

// libsodium's AES-256-GCM, one-shot, and with its key schedule expanded once (what the
// transport used before it had its own).
void raw_libsodium_aes(benchmark::State& state, bool precomputed) {
  (void)crypto::init();
  if (crypto_aead_aes256gcm_is_available() == 0) {
    state.SkipWithError("no AES-NI: libsodium has no AES-256-GCM here");
    return;
  }
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> key(32, 1), nonce(12, 0), ad(16, 2), buf(size + 16);
  alignas(16) crypto_aead_aes256gcm_state st;
  crypto_aead_aes256gcm_beforenm(&st, key.data());
  for (auto _ : state) {
    if (precomputed) {
      crypto_aead_aes256gcm_encrypt_detached_afternm(buf.data(), buf.data() + size, nullptr, buf.data(), size,
                                                     ad.data(), ad.size(), nullptr, nonce.data(), &st);
    } else {
      crypto_aead_aes256gcm_encrypt_detached(buf.data(), buf.data() + size, nullptr, buf.data(), size, ad.data(),
                                             ad.size(), nullptr, nonce.data(), key.data());
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
void BM_RawLibsodiumAes256Gcm(benchmark::State& state) { raw_libsodium_aes(state, false); }
void BM_RawLibsodiumAes256GcmPrecomputed(benchmark::State& state) { raw_libsodium_aes(state, true); }

// The transport's AES-256-GCM (crypto/aes_gcm.h) through TransportKey: seal, and open of
// a sealed packet (the copy back is part of the loop, as in BM_OpenInPlace).
void BM_TransportAes256Gcm(benchmark::State& state) {
  (void)crypto::init();
  if (!crypto::aes256gcm_available()) {
    state.SkipWithError("no AES-NI and PCLMULQDQ here");
    return;
  }
  const auto size = static_cast<std::size_t>(state.range(0));
  const bool open = state.range(1) != 0;
  crypto::KeyPair k = crypto::KeyPair::generate();
  const crypto::TransportKey key(std::move(k.priv), crypto::Cipher::Aes256Gcm);
  std::vector<std::uint8_t> ad(dp::kHeaderLen, 2), sealed(size + 16), b(size + 16);
  (void)key.seal(1, ad, sealed.data(), size);
  std::uint64_t counter = 1;
  for (auto _ : state) {
    if (open) {
      b = sealed;
      benchmark::DoNotOptimize(key.open(1, ad, b.data(), b.size()));
    } else {
      (void)key.seal(counter++, ad, b.data(), size);
      benchmark::ClobberMemory();
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

// OpenSSL EVP, one context set up once and re-keyed with a fresh nonce per packet (what
// a bulk backend does).
void raw_openssl(benchmark::State& state, const EVP_CIPHER* cipher) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> key(32, 1), nonce(12, 0), ad(16, 2), buf(size + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, cipher, nullptr, key.data(), nullptr);
  int n = 0;
  for (auto _ : state) {
    EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data());
    EVP_EncryptUpdate(ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size()));
    EVP_EncryptUpdate(ctx, buf.data(), &n, buf.data(), static_cast<int>(size));
    EVP_EncryptFinal_ex(ctx, buf.data() + n, &n);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, buf.data() + size);
    benchmark::ClobberMemory();
  }
  EVP_CIPHER_CTX_free(ctx);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
void BM_RawOpensslChaCha20Poly1305(benchmark::State& state) { raw_openssl(state, EVP_chacha20_poly1305()); }
void BM_RawOpensslAes256Gcm(benchmark::State& state) { raw_openssl(state, EVP_aes_256_gcm()); }

BENCHMARK(BM_SealInPlace)->ArgsProduct({{64, 1420, 65535}, {1, 16, 64}});
BENCHMARK(BM_OpenInPlace)->Arg(64)->Arg(1420)->Arg(65535);
BENCHMARK(BM_RawLibsodium)->Arg(64)->Arg(1420)->Arg(65535);
BENCHMARK(BM_RawLibsodiumAes256Gcm)->Arg(64)->Arg(1420)->Arg(65535);
BENCHMARK(BM_RawLibsodiumAes256GcmPrecomputed)->Arg(64)->Arg(1420)->Arg(65535);
BENCHMARK(BM_TransportAes256Gcm)->ArgsProduct({{64, 1420, 65535}, {0, 1}});
BENCHMARK(BM_RawOpensslChaCha20Poly1305)->Arg(64)->Arg(1420)->Arg(65535);
BENCHMARK(BM_RawOpensslAes256Gcm)->Arg(64)->Arg(1420)->Arg(65535);

}  // namespace

BENCHMARK_MAIN();
