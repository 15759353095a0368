#include "crypto/aead.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/vectors.h"

namespace triglav::crypto {
namespace {

using test::unhex;

// Every AEAD test runs under both implementations.
class AeadBackends : public ::testing::TestWithParam<AeadBackend> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(init());
    set_aead_backend(GetParam());
  }
  void TearDown() override { set_aead_backend(AeadBackend::Sodium); }
};

INSTANTIATE_TEST_SUITE_P(Aead, AeadBackends, ::testing::Values(AeadBackend::Sodium, AeadBackend::OpenSsl),
                         [](const auto& info) { return std::string(aead_backend_name(info.param)); });

TEST_P(AeadBackends, Rfc8439Vectors) {
  TRIGLAV_REQUIRE_VECTOR(text, "rfc8439_chacha20poly1305_aead.json");
  const auto doc = nlohmann::json::parse(*text);
  int n = 0;
  for (const auto& v : doc["vectors"]) {
    const auto key = unhex(v["key"]);
    const auto nonce = unhex(v["nonce"]);
    const auto aad = unhex(v["aad"]);
    auto buf = unhex(v["plaintext"]);
    const auto pt = buf;
    auto expect = unhex(v["ciphertext"]);
    const auto tag = unhex(v["tag"]);
    expect.insert(expect.end(), tag.begin(), tag.end());
    buf.resize(pt.size() + kTagLen);
    EXPECT_TRUE(seal_with_nonce(key.data(), nonce.data(), aad, buf.data(), pt.size()));
    EXPECT_EQ(buf, expect) << v["name"];
    ASSERT_TRUE(open_with_nonce(key.data(), nonce.data(), aad, buf.data(), buf.size()));
    EXPECT_EQ(std::vector<std::uint8_t>(buf.begin(), buf.begin() + pt.size()), pt);
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST_P(AeadBackends, WycheproofVectors) {
  TRIGLAV_REQUIRE_VECTOR(text, "wycheproof_chacha20_poly1305_test.json");
  const auto doc = nlohmann::json::parse(*text);
  int valid = 0, invalid = 0, other_nonce = 0;
  for (const auto& g : doc["testGroups"]) {
    for (const auto& t : g["tests"]) {
      const auto iv = unhex(t["iv"]);
      const bool ok = t["result"] == "valid";
      if (iv.size() != kNonceLen) {  // our AEAD only takes 96-bit nonces
        EXPECT_FALSE(ok) << "tcId " << t["tcId"];
        ++other_nonce;
        continue;
      }
      const auto key = unhex(t["key"]);
      const auto aad = unhex(t["aad"]);
      const auto msg = unhex(t["msg"]);
      auto ct = unhex(t["ct"]);
      const auto tag = unhex(t["tag"]);
      ct.insert(ct.end(), tag.begin(), tag.end());
      if (ok) {
        std::vector<std::uint8_t> buf(msg);
        buf.resize(msg.size() + kTagLen);
        EXPECT_TRUE(seal_with_nonce(key.data(), iv.data(), aad, buf.data(), msg.size()));
        EXPECT_EQ(buf, ct) << "tcId " << t["tcId"];
        ++valid;
      } else {
        ++invalid;
      }
      std::vector<std::uint8_t> buf(ct);
      EXPECT_EQ(open_with_nonce(key.data(), iv.data(), aad, buf.data(), buf.size()), ok)
          << "tcId " << t["tcId"];
    }
  }
  EXPECT_EQ(valid, 256);
  EXPECT_EQ(invalid, 60);
  EXPECT_EQ(other_nonce, 9);
}

TEST(Aead, BackendsInteroperate) {
  ASSERT_TRUE(init());
  KeyPair k = KeyPair::generate();
  const std::uint8_t ad[16] = {7};
  for (std::size_t len : {0u, 1u, 63u, 64u, 1420u}) {
    for (auto [from, to] : {std::pair{AeadBackend::Sodium, AeadBackend::OpenSsl},
                            std::pair{AeadBackend::OpenSsl, AeadBackend::Sodium}}) {
      std::vector<std::uint8_t> buf(len + kTagLen, 0x42), plain(len, 0x42);
      set_aead_backend(from);
      EXPECT_TRUE(seal_in_place(k.priv, 99, ad, buf.data(), len));
      set_aead_backend(to);
      ASSERT_TRUE(open_in_place(k.priv, 99, ad, buf.data(), buf.size())) << len;
      EXPECT_EQ(std::vector<std::uint8_t>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(len)), plain);
      buf[0] ^= 1;  // and a flipped bit fails under both
      if (len > 0) {
        set_aead_backend(from);
        EXPECT_TRUE(seal_in_place(k.priv, 100, ad, buf.data(), len));
        buf[0] ^= 1;
        set_aead_backend(to);
        EXPECT_FALSE(open_in_place(k.priv, 100, ad, buf.data(), buf.size())) << len;
      }
    }
  }
  set_aead_backend(AeadBackend::Sodium);
}

TEST(Aead, FastestBackendIsMeasured) {
  ASSERT_TRUE(init());
  double sodium_ns = 0, openssl_ns = 0;
  const AeadBackend b = fastest_aead_backend(&sodium_ns, &openssl_ns);
  EXPECT_GT(sodium_ns, 0);
  EXPECT_GT(openssl_ns, 0);
  EXPECT_EQ(b, openssl_ns < sodium_ns ? AeadBackend::OpenSsl : AeadBackend::Sodium);
}

TEST(Aead, CounterNonceLayout) {
  std::uint8_t n[kNonceLen];
  make_nonce(n, 0x0102030405060708ull);
  const std::uint8_t expect[kNonceLen] = {0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_EQ(std::memcmp(n, expect, kNonceLen), 0);
}

TEST_P(AeadBackends, WrongCounterKeyOrAdFails) {
  KeyPair a = KeyPair::generate(), b = KeyPair::generate();
  const std::uint8_t ad[4] = {1, 2, 3, 4};
  std::uint8_t buf[64 + kTagLen] = {9};
  EXPECT_TRUE(seal_in_place(a.priv, 5, ad, buf, 64));
  std::uint8_t copy[sizeof buf];
  std::memcpy(copy, buf, sizeof buf);
  EXPECT_FALSE(open_in_place(a.priv, 6, ad, copy, sizeof copy));
  std::memcpy(copy, buf, sizeof buf);
  EXPECT_FALSE(open_in_place(b.priv, 5, ad, copy, sizeof copy));
  std::memcpy(copy, buf, sizeof buf);
  const std::uint8_t ad2[4] = {1, 2, 3, 5};
  EXPECT_FALSE(open_in_place(a.priv, 5, ad2, copy, sizeof copy));
  std::memcpy(copy, buf, sizeof buf);
  EXPECT_FALSE(open_in_place(a.priv, 5, ad, copy, kTagLen - 1));  // shorter than a tag
  EXPECT_TRUE(open_in_place(a.priv, 5, ad, buf, sizeof buf));
  EXPECT_EQ(buf[0], 9);
}

// OpenSSL failing after its in-place update leaves keystream-XORed bytes: sealing them
// again under the same key and nonce would undo the encryption. The seal reports the
// failure instead and leaves neither plaintext nor ciphertext behind.
TEST(Aead, AnOpenSslSealThatFailsMidwayIsReportedAndLeavesNothingToSend) {
  ASSERT_TRUE(init());
  set_aead_backend(AeadBackend::OpenSsl);
  const KeyPair k = KeyPair::generate();
  std::vector<std::uint8_t> buf(200 + kTagLen, 0x41);
  inject_seal_failures(1);
  EXPECT_FALSE(seal_in_place(k.priv, 3, {}, buf.data(), 200));
  EXPECT_EQ(std::count(buf.begin(), buf.end(), 0), static_cast<std::ptrdiff_t>(buf.size())) << "buffer wiped";
  // Only that one seal failed: the next is whole and opens.
  std::fill(buf.begin(), buf.end(), 0x41);
  EXPECT_TRUE(seal_in_place(k.priv, 4, {}, buf.data(), 200));
  EXPECT_NE(buf[0], 0x41);
  EXPECT_TRUE(open_in_place(k.priv, 4, {}, buf.data(), buf.size()));
  EXPECT_EQ(buf[0], 0x41);
  // Through a session's key too (ChaCha20-Poly1305 goes through the backend).
  const TransportKey tk(SecretKey(k.priv.span()));
  inject_seal_failures(1);
  EXPECT_FALSE(tk.seal(5, {}, buf.data(), 200));
  inject_seal_failures(0);
  set_aead_backend(AeadBackend::Sodium);
}

// A busy thread's contexts forget their key once a session's key is destroyed (the
// context may hold that very key), not before.
TEST(Aead, ContextsForgetTheKeyWhenASessionKeyIsDestroyed) {
  ASSERT_TRUE(init());
  set_aead_backend(AeadBackend::OpenSsl);
  const KeyPair k = KeyPair::generate();
  std::uint8_t buf[64 + kTagLen] = {1};
  forget_thread_keys();
  forget_retired_keys();  // what earlier tests destroyed
  auto session = std::make_unique<TransportKey>(
      SecretKey(std::span<const std::uint8_t, kKeyLen>(k.priv.data(), kKeyLen)), Cipher::ChaCha20Poly1305);
  ASSERT_TRUE(session->seal(1, {}, buf, 64));
  EXPECT_EQ(contexts_holding_keys(), 1u) << "this thread's seal context";
  forget_retired_keys();  // no key destroyed since: the context keeps its key
  EXPECT_EQ(contexts_holding_keys(), 1u);
  session.reset();  // the session goes
  EXPECT_EQ(contexts_holding_keys(), 1u) << "nothing happens until the thread looks";
  forget_retired_keys();
  EXPECT_EQ(contexts_holding_keys(), 0u);
  set_aead_backend(AeadBackend::Sodium);
}

// OpenSSL's per-thread contexts keep their last key; a thread that goes idle drops it.
TEST(Aead, AThreadForgetsTheKeyInItsOpenSslContexts) {
  ASSERT_TRUE(init());
  set_aead_backend(AeadBackend::OpenSsl);
  const KeyPair k = KeyPair::generate();
  std::uint8_t buf[64 + kTagLen] = {1};
  forget_thread_keys();  // what earlier tests on this thread left
  const unsigned before = contexts_holding_keys();
  EXPECT_EQ(before, 0u) << "this test runs on the process's only thread";
  ASSERT_TRUE(seal_in_place(k.priv, 1, {}, buf, 64));
  ASSERT_TRUE(open_in_place(k.priv, 1, {}, buf, sizeof buf));
  EXPECT_EQ(contexts_holding_keys(), before + 2) << "this thread's seal and open contexts";
  forget_thread_keys();
  EXPECT_EQ(contexts_holding_keys(), before);
  forget_thread_keys();  // nothing held: nothing to do
  EXPECT_EQ(contexts_holding_keys(), before);
  // Set up again, keyless: the next use works as before.
  ASSERT_TRUE(seal_in_place(k.priv, 2, {}, buf, 64));
  EXPECT_TRUE(open_in_place(k.priv, 2, {}, buf, sizeof buf));
  forget_thread_keys();
  set_aead_backend(AeadBackend::Sodium);
}

// AES-256-GCM through TransportKey (crypto/aes_gcm.h, its precomputed schedule) against
// OpenSSL's implementation of the same algorithm: the same ciphertext and tag for the
// same key, nonce and data, and each opens the other's.
TEST(TransportKey, Aes256GcmMatchesAnIndependentImplementation) {
  ASSERT_TRUE(init());
  if (!aes256gcm_available()) GTEST_SKIP() << "no AES-NI on this CPU";
  std::uint8_t k[32];
  for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(3 * i + 1);
  const TransportKey key(SecretKey(std::span<const std::uint8_t, kKeyLen>(k, kKeyLen)), Cipher::Aes256Gcm);
  EXPECT_EQ(key.cipher(), Cipher::Aes256Gcm);
  for (std::size_t len : {0u, 1u, 15u, 16u, 64u, 1420u, 9000u}) {
    SCOPED_TRACE(len);
    const std::uint64_t counter = 0x0102030405060708ull + len;
    std::vector<std::uint8_t> ad(16, 0xad), ours(len + kTagLen), theirs(len + kTagLen);
    for (std::size_t i = 0; i < len; ++i) ours[i] = theirs[i] = static_cast<std::uint8_t>(i * 13);
    EXPECT_TRUE(key.seal(counter, ad, ours.data(), len));
    std::uint8_t nonce[kNonceLen];
    make_nonce(nonce, counter);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    ASSERT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, k, nonce), 1);
    ASSERT_EQ(EVP_EncryptUpdate(ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size())), 1);
    if (len > 0) {
      ASSERT_EQ(EVP_EncryptUpdate(ctx, theirs.data(), &n, theirs.data(), static_cast<int>(len)), 1);
    }
    ASSERT_EQ(EVP_EncryptFinal_ex(ctx, theirs.data() + len, &n), 1);
    ASSERT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, theirs.data() + len), 1);
    EVP_CIPHER_CTX_free(ctx);
    EXPECT_EQ(ours, theirs);
    ASSERT_TRUE(key.open(counter, ad, theirs.data(), theirs.size()));
    for (std::size_t i = 0; i < len; ++i) ASSERT_EQ(theirs[i], static_cast<std::uint8_t>(i * 13));
    // A wrong counter, AD byte or ciphertext bit fails.
    EXPECT_FALSE(key.open(counter + 1, ad, ours.data(), ours.size()));
    ad[0] ^= 1;
    EXPECT_FALSE(key.open(counter, ad, ours.data(), ours.size()));
  }
}

TEST(TransportKey, ChaChaIsTheDefaultAndTheCiphersDoNotMix) {
  ASSERT_TRUE(init());
  std::uint8_t k[32] = {9};
  const TransportKey chacha(SecretKey(std::span<const std::uint8_t, kKeyLen>(k, kKeyLen)));
  EXPECT_EQ(chacha.cipher(), Cipher::ChaCha20Poly1305);
  SecretKey same(std::span<const std::uint8_t, kKeyLen>(k, kKeyLen));
  std::uint8_t a[64 + kTagLen] = {1, 2, 3}, b[64 + kTagLen] = {1, 2, 3};
  EXPECT_TRUE(chacha.seal(7, {}, a, 64));
  EXPECT_TRUE(seal_in_place(same, 7, {}, b, 64));
  EXPECT_EQ(std::memcmp(a, b, sizeof a), 0) << "a plain key seals as seal_in_place does";
  if (!aes256gcm_available()) GTEST_SKIP() << "no AES-NI on this CPU";
  TransportKey aes(SecretKey(std::span<const std::uint8_t, kKeyLen>(k, kKeyLen)), Cipher::Aes256Gcm);
  EXPECT_FALSE(aes.open(7, {}, a, sizeof a)) << "a ChaCha20-Poly1305 packet does not open under AES-256-GCM";
  TransportKey moved = std::move(aes);
  std::uint8_t c[16 + kTagLen] = {};
  EXPECT_TRUE(moved.seal(1, {}, c, 16));
  EXPECT_TRUE(moved.open(1, {}, c, sizeof c)) << "a moved key keeps its schedule";
  EXPECT_NE(cipher_name(Cipher::Aes256Gcm), cipher_name(Cipher::ChaCha20Poly1305));
}

TEST(X25519, WycheproofVectors) {
  ASSERT_TRUE(init());
  TRIGLAV_REQUIRE_VECTOR(text, "wycheproof_x25519_test.json");
  const auto doc = nlohmann::json::parse(*text);
  int checked = 0;
  for (const auto& g : doc["testGroups"]) {
    for (const auto& t : g["tests"]) {
      const auto priv = unhex(t["private"]);
      const auto pub = unhex(t["public"]);
      const auto shared = unhex(t["shared"]);
      SecretKey sk(std::span<const std::uint8_t, kKeyLen>(priv.data(), kKeyLen));
      std::array<std::uint8_t, kKeyLen> out{};
      const bool ok = x25519(out, sk, std::span<const std::uint8_t, kKeyLen>(pub.data(), kKeyLen));
      const bool zero = std::all_of(shared.begin(), shared.end(), [](auto c) { return c == 0; });
      if (zero) {
        EXPECT_FALSE(ok) << "tcId " << t["tcId"] << ": low-order point must be refused";
      } else if (t["result"] == "valid") {
        ASSERT_TRUE(ok) << "tcId " << t["tcId"];
        EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.end()), shared) << "tcId " << t["tcId"];
      } else if (ok) {  // "acceptable": if computed, it must be right
        EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.end()), shared) << "tcId " << t["tcId"];
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 518);
}

}  // namespace
}  // namespace triglav::crypto
