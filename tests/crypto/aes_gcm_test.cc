#include "crypto/aes_gcm.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/vectors.h"

namespace triglav::crypto {
namespace {

using test::unhex;
using Bytes = std::vector<std::uint8_t>;

// OpenSSL's AES-256-GCM, for a second opinion: ciphertext then tag.
Bytes openssl_seal(const Bytes& key, const Bytes& nonce, const Bytes& ad, const Bytes& pt) {
  Bytes out(pt.size() + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()), 1);
  if (!ad.empty()) {
    EXPECT_EQ(EVP_EncryptUpdate(ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size())), 1);
  }
  if (!pt.empty()) {
    EXPECT_EQ(EVP_EncryptUpdate(ctx, out.data(), &n, pt.data(), static_cast<int>(pt.size())), 1);
  }
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx, out.data() + pt.size(), &n), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out.data() + pt.size()), 1);
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

Bytes sodium_seal(const Bytes& key, const Bytes& nonce, const Bytes& ad, const Bytes& pt) {
  Bytes out(pt.size() + 16);
  crypto_aead_aes256gcm_encrypt_detached(out.data(), out.data() + pt.size(), nullptr, pt.data(), pt.size(),
                                         ad.data(), ad.size(), nullptr, nonce.data(), key.data());
  return out;
}

Bytes ours_seal(bool wide, const Bytes& key, const Bytes& nonce, const Bytes& ad, const Bytes& pt,
                std::size_t offset = 0) {
  Bytes buf(offset + pt.size() + 16);
  std::copy(pt.begin(), pt.end(), buf.begin() + static_cast<std::ptrdiff_t>(offset));
  AesGcm256(key.data(), wide).seal(nonce.data(), ad, buf.data() + offset, pt.size());
  return Bytes(buf.begin() + static_cast<std::ptrdiff_t>(offset), buf.end());
}

// One Wycheproof case with AES-256, a 96-bit IV and a 128-bit tag.
struct WycheproofCase {
  int id;
  Bytes key, iv, aad, msg, sealed;  // sealed: ct then tag
  bool valid;
};

// Calls f on each such case of the file (the others are counted in *skipped); the number
// of cases seen.
int for_each_wycheproof_case(const std::string& text, int* skipped, const std::function<void(const WycheproofCase&)>& f) {
  const auto doc = nlohmann::json::parse(text);
  int n = 0;
  for (const auto& g : doc["testGroups"]) {
    if (g["keySize"] != 256 || g["ivSize"] != 96 || g["tagSize"] != 128) {
      *skipped += static_cast<int>(g["tests"].size());
      continue;
    }
    for (const auto& t : g["tests"]) {
      WycheproofCase c{t["tcId"].get<int>(), unhex(t["key"]), unhex(t["iv"]), unhex(t["aad"]), unhex(t["msg"]),
                       unhex(t["ct"]), t["result"] == "valid"};
      const Bytes tag = unhex(t["tag"]);
      c.sealed.insert(c.sealed.end(), tag.begin(), tag.end());
      EXPECT_NE(t["result"], "acceptable") << "tcId " << c.id;
      f(c);
      ++n;
    }
  }
  return n;
}

// Every test runs with the 256-bit code (where the CPU has VAES and VPCLMULQDQ; the
// same code as narrow otherwise) and with the 128-bit code alone.
class AesGcm : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    if (!AesGcm256::supported()) GTEST_SKIP() << "no AES-NI and PCLMULQDQ on this CPU";
  }
  bool wide() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Widths, AesGcm, ::testing::Values(true, false),
                         [](const auto& info) { return std::string(info.param ? "Wide" : "Narrow"); });

// Test cases 13 to 16 of the GCM specification (McGrew and Viega), the AES-256 ones
// with 96-bit nonces.
TEST_P(AesGcm, SpecificationTestCases) {
  struct Case {
    const char *key, *nonce, *ad, *pt, *ct, *tag;
  };
  const std::string k16 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
  const std::string pt16 =
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
      "b16aedf5aa0de657ba637b391aafd255";
  const Case cases[] = {
      {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "",
       "530f8afbc74536b9a963b4f1c4cb738b"},
      {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "",
       "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
      {k16.c_str(), "cafebabefacedbaddecaf888", "", pt16.c_str(),
       "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
       "c5f61e6393ba7a0abcc9f662898015ad",
       "b094dac5d93471bdec1a502270e3cc6c"},
      {k16.c_str(), "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
       "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
       "b16aedf5aa0de657ba637b39",
       "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
       "c5f61e6393ba7a0abcc9f662",
       "76fc6ece0f4e1768cddf8853bb2d551b"},
  };
  for (const auto& c : cases) {
    const Bytes key = unhex(c.key), nonce = unhex(c.nonce), ad = unhex(c.ad), pt = unhex(c.pt);
    Bytes want = unhex(c.ct);
    const Bytes tag = unhex(c.tag);
    want.insert(want.end(), tag.begin(), tag.end());
    Bytes buf = ours_seal(wide(), key, nonce, ad, pt);
    EXPECT_EQ(buf, want) << c.tag;
    ASSERT_TRUE(AesGcm256(key.data(), wide()).open(nonce.data(), ad, buf.data(), buf.size()));
    EXPECT_EQ(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pt.size())), pt);
  }
}

// Wycheproof's AES-GCM vectors (../shared/vectors, see SOURCES.md there): all 66 cases
// with a 256-bit key and a 96-bit IV. The valid ones seal to the expected ciphertext
// and tag and open to the message; each invalid one (a modified tag) fails and leaves
// the buffer exactly as it was.
TEST_P(AesGcm, WycheproofVectors) {
  TRIGLAV_REQUIRE_VECTOR(text, "wycheproof_aes_gcm_test.json");
  int valid = 0, invalid = 0, skipped = 0;
  const int n = for_each_wycheproof_case(*text, &skipped, [&](const WycheproofCase& c) {
    const AesGcm256 k(c.key.data(), wide());
    if (c.valid) {
      EXPECT_EQ(ours_seal(wide(), c.key, c.iv, c.aad, c.msg), c.sealed) << "tcId " << c.id;
      ++valid;
    } else {
      ++invalid;
    }
    Bytes buf = c.sealed;
    EXPECT_EQ(k.open(c.iv.data(), c.aad, buf.data(), buf.size()), c.valid) << "tcId " << c.id;
    if (c.valid) {
      EXPECT_EQ(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(c.msg.size())), c.msg) << "tcId " << c.id;
    } else {
      EXPECT_EQ(buf, c.sealed) << "tcId " << c.id << ": a failed open changed the buffer";
    }
  });
  EXPECT_EQ(n, 66);
  EXPECT_EQ(valid, 39);
  EXPECT_EQ(invalid, 27);
  EXPECT_EQ(skipped, 316 - 66) << "the file's other key sizes and IV lengths";
}

// The same 66 cases through the two libraries our AES-256-GCM is compared with, so a
// disagreement points at the right party: each valid case seals to the vector's bytes
// and opens to its message, each invalid one fails. (They decrypt into a buffer of
// their own here; the in-place guarantee is ours, checked above.)
TEST(AesGcmLibraries, WycheproofVectors) {
  ASSERT_GE(sodium_init(), 0);
  TRIGLAV_REQUIRE_VECTOR(text, "wycheproof_aes_gcm_test.json");
  const bool sodium_has_aes = crypto_aead_aes256gcm_is_available() != 0;
  int skipped = 0;
  const int n = for_each_wycheproof_case(*text, &skipped, [&](const WycheproofCase& c) {
    const std::size_t clen = c.sealed.size() - 16;
    if (c.valid) {
      EXPECT_EQ(openssl_seal(c.key, c.iv, c.aad, c.msg), c.sealed) << "OpenSSL, tcId " << c.id;
    }
    // OpenSSL decryption: plaintext into out, the tag checked by the final call.
    {
      const Bytes in = c.sealed;
      Bytes out(clen + 16);
      EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
      int len = 0;
      bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, c.key.data(), c.iv.data()) == 1 &&
                (c.aad.empty() ||
                 EVP_DecryptUpdate(ctx, nullptr, &len, c.aad.data(), static_cast<int>(c.aad.size())) == 1) &&
                (clen == 0 || EVP_DecryptUpdate(ctx, out.data(), &len, in.data(), static_cast<int>(clen)) == 1) &&
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, const_cast<std::uint8_t*>(in.data() + clen)) == 1 &&
                EVP_DecryptFinal_ex(ctx, out.data() + clen, &len) == 1;
      EVP_CIPHER_CTX_free(ctx);
      EXPECT_EQ(ok, c.valid) << "OpenSSL, tcId " << c.id;
      if (ok) {
        EXPECT_EQ(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(clen)), c.msg);
      }
    }
    if (!sodium_has_aes) return;
    if (c.valid) {
      EXPECT_EQ(sodium_seal(c.key, c.iv, c.aad, c.msg), c.sealed) << "libsodium, tcId " << c.id;
    }
    const Bytes in = c.sealed;
    Bytes out(clen + 1, 0xee);
    const bool ok = crypto_aead_aes256gcm_decrypt_detached(out.data(), nullptr, in.data(), clen, in.data() + clen,
                                                           c.aad.data(), c.aad.size(), c.iv.data(), c.key.data()) == 0;
    EXPECT_EQ(ok, c.valid) << "libsodium, tcId " << c.id;
    if (ok) {
      EXPECT_EQ(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(clen)), c.msg);
    }
  });
  EXPECT_EQ(n, 66);
  if (!sodium_has_aes) GTEST_SKIP() << "SKIPPED: libsodium's AES-256-GCM needs AES-NI (OpenSSL's was checked)";
}

// Every length from 0 to 300 bytes (all the ways a tail can fall around the 8- and
// 16-block strides), packet sizes, associated data of every length to 40 and longer
// with the longer packets, random keys and nonces: the same ciphertext and tag as libsodium and OpenSSL, and ours opens theirs.
TEST_P(AesGcm, MatchesLibsodiumAndOpensslOnRandomInputs) {
  std::mt19937_64 rng(20261128);
  auto random = [&](std::size_t n) {
    Bytes b(n);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    return b;
  };
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (std::size_t n : {1419u, 1420u, 1436u, 4096u, 9000u, 65535u}) lengths.push_back(n);
  int checked = 0;
  for (std::size_t len : lengths) {
    SCOPED_TRACE(len);
    const Bytes key = random(32), nonce = random(12), ad = random(len % 41 + (len > 300 ? 250 : 0)), pt = random(len);
    const Bytes ours = ours_seal(wide(), key, nonce, ad, pt, len % 7);  // unaligned too
    ASSERT_EQ(ours, sodium_seal(key, nonce, ad, pt));
    ASSERT_EQ(ours, openssl_seal(key, nonce, ad, pt));
    Bytes theirs = sodium_seal(key, nonce, ad, pt);
    ASSERT_TRUE(AesGcm256(key.data(), wide()).open(nonce.data(), ad, theirs.data(), theirs.size()));
    ASSERT_EQ(Bytes(theirs.begin(), theirs.begin() + static_cast<std::ptrdiff_t>(len)), pt);
    ++checked;
  }
  EXPECT_EQ(checked, 307);
}

// Any flipped bit of ciphertext, tag, associated data or nonce fails, and a failed open
// leaves the buffer as it was (nothing is decrypted before the tag is checked).
TEST_P(AesGcm, TamperingFailsAndDecryptsNothing) {
  Bytes key(32, 7), nonce(12, 9), ad(16, 0xad), pt(100);
  for (std::size_t i = 0; i < pt.size(); ++i) pt[i] = static_cast<std::uint8_t>(i);
  const AesGcm256 k(key.data(), wide());
  Bytes sealed = pt;
  sealed.resize(pt.size() + 16);
  k.seal(nonce.data(), ad, sealed.data(), pt.size());
  for (std::size_t bit = 0; bit < sealed.size() * 8; bit += 5) {
    Bytes b = sealed;
    b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    const Bytes before = b;
    ASSERT_FALSE(k.open(nonce.data(), ad, b.data(), b.size())) << bit;
    ASSERT_EQ(b, before);
  }
  Bytes b = sealed;
  ad[3] ^= 0x10;
  EXPECT_FALSE(k.open(nonce.data(), ad, b.data(), b.size()));
  ad[3] ^= 0x10;
  nonce[11] ^= 1;
  EXPECT_FALSE(k.open(nonce.data(), ad, b.data(), b.size()));
  nonce[11] ^= 1;
  EXPECT_FALSE(k.open(nonce.data(), ad, b.data(), 15)) << "shorter than a tag";
  EXPECT_FALSE(AesGcm256(Bytes(32, 8).data(), wide()).open(nonce.data(), ad, b.data(), b.size())) << "another key";
  ASSERT_TRUE(k.open(nonce.data(), ad, b.data(), b.size()));
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 100), pt);
}

}  // namespace
}  // namespace triglav::crypto
