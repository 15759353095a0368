// Sealing cost per packet: our in-place seal (header as associated data, counter nonce)
// next to the raw libsodium call it wraps, which is its ceiling.
#include <benchmark/benchmark.h>
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
      crypto::seal_in_place(k.priv, counter++, {b.data(), dp::kHeaderLen}, b.data() + dp::kHeaderLen, size);
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
  crypto::seal_in_place(k.priv, 1, {sealed.data(), dp::kHeaderLen}, sealed.data() + dp::kHeaderLen, size);
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

BENCHMARK(BM_SealInPlace)->ArgsProduct({{64, 1420, 65535}, {1, 16, 64}});
BENCHMARK(BM_OpenInPlace)->Arg(64)->Arg(1420)->Arg(65535);
BENCHMARK(BM_RawLibsodium)->Arg(64)->Arg(1420)->Arg(65535);

}  // namespace

BENCHMARK_MAIN();
