#include "crypto/authkey.h"
#include "crypto/aead.h"
#include "crypto/client_key.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace triglav::crypto {
namespace {

AuthKey sample() {
  AuthKey k;
  for (std::size_t i = 0; i < k.server_key.size(); ++i) k.server_key[i] = static_cast<std::uint8_t>(i);
  AuthKeyAddress v4;
  v4.ip = {192, 0, 2, 1};
  v4.port = 7443;
  AuthKeyAddress v6;
  v6.v6 = true;
  v6.ip = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  v6.port = 443;
  k.addresses = {v4, v6};
  return k;
}

TEST(AuthKey, RoundTrip) {
  for (std::size_t n = 0; n <= 2; ++n) {
    AuthKey k = sample();
    k.addresses.resize(n);
    const std::string text = encode_authkey(k);
    EXPECT_EQ(text.rfind("tg1_", 0), 0u);
    AuthKey back;
    std::string err;
    ASSERT_TRUE(decode_authkey(text, back, err)) << err;
    EXPECT_EQ(back, k);
  }
}

TEST(AuthKey, ByteLayout) {
  AuthKey k = sample();
  k.addresses.resize(1);
  std::vector<std::uint8_t> raw;
  ASSERT_TRUE(from_base64url(encode_authkey(k).substr(4), raw));
  ASSERT_EQ(raw.size(), 32u + 1 + 4 + 2);
  EXPECT_EQ(raw[32], 1);  // IPv4
  EXPECT_EQ(raw[33], 192);
  EXPECT_EQ(raw[37], 7443 >> 8);  // port big-endian
  EXPECT_EQ(raw[38], 7443 & 0xff);
}

std::string keytext(const std::vector<std::uint8_t>& raw) {
  return "tg1_" + to_base64url(raw.data(), raw.size());
}

struct Bad {
  std::string text;
  std::string error_contains;
};

TEST(AuthKey, Rejections) {
  std::vector<std::uint8_t> key(32, 7);
  auto with = [&](std::vector<std::uint8_t> extra) {
    std::vector<std::uint8_t> r = key;
    r.insert(r.end(), extra.begin(), extra.end());
    return keytext(r);
  };
  const std::string good = encode_authkey(sample());
  const Bad cases[] = {
      {"", "must start with 'tg1_'"},
      {"tg2_" + good.substr(4), "must start with 'tg1_'"},
      {"TG1_" + good.substr(4), "must start with 'tg1_'"},
      {"tg1_", "truncated"},
      {"tg1_!!!!", "not valid base64url"},
      {"tg1_abc=", "not valid base64url"},  // padding is not part of the format
      {good + "*", "not valid base64url"},
      {keytext(std::vector<std::uint8_t>(10, 1)), "truncated: 10 bytes"},
      {keytext(std::vector<std::uint8_t>(31, 1)), "truncated: 31 bytes"},
      {with({3, 1, 2, 3, 4, 0, 1}), "unknown type 3"},
      {with({0}), "unknown type 0"},
      {with({1, 192, 0, 2}), "truncated inside address 1"},
      {with({1, 192, 0, 2, 1, 0x1d}), "truncated inside address 1"},
      {with({2, 1, 2, 3, 4, 5, 6, 7, 8}), "truncated inside address 1"},
      {with({1, 192, 0, 2, 1, 0x1d, 0x13, 1}), "truncated inside address 2"},
      {with({1, 192, 0, 2, 1, 0, 0}), "port 0"},
  };
  for (const auto& c : cases) {
    AuthKey out;
    std::string err;
    EXPECT_FALSE(decode_authkey(c.text, out, err)) << c.text;
    EXPECT_NE(err.find(c.error_contains), std::string::npos) << c.text << " -> " << err;
  }
}

TEST(AuthKey, Base64UrlRoundTripAllLengths) {
  for (std::size_t n = 0; n < 70; ++n) {
    std::vector<std::uint8_t> in(n);
    for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<std::uint8_t>(i * 37 + 250);
    const std::string t = to_base64url(in.data(), in.size());
    EXPECT_EQ(t.find_first_of("+/="), std::string::npos);
    std::vector<std::uint8_t> out;
    ASSERT_TRUE(from_base64url(t, out));
    EXPECT_EQ(out, in);
  }
}

TEST(ClientKey, RoundTripAndDerivation) {
  ASSERT_TRUE(init());
  const ClientKey k = ClientKey::generate();
  const std::string text = encode_client_key(k);
  EXPECT_TRUE(text.starts_with("tgc1_"));
  ClientKey back;
  std::string err;
  ASSERT_TRUE(decode_client_key(text, back, err)) << err;
  EXPECT_EQ(back.id, k.id);
  EXPECT_TRUE(std::ranges::equal(back.psk.span(), k.psk.span()));
  // The id and the psk are distinct derivations, neither the secret itself.
  EXPECT_FALSE(std::ranges::equal(k.psk.span(), k.secret.span()));
  EXPECT_FALSE(std::equal(k.id.begin(), k.id.end(), k.psk.span().begin()));
  EXPECT_FALSE(std::equal(k.id.begin(), k.id.end(), k.secret.span().begin()));
  // Another key, another id.
  EXPECT_NE(ClientKey::generate().id, k.id);
  EXPECT_EQ(client_key_label(k.id).size(), 16u);
}

TEST(ClientKey, FixedSecretGivesFixedIdAndPsk) {
  ASSERT_TRUE(init());
  std::array<std::uint8_t, kKeyLen> s{};
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(i);
  const ClientKey a = ClientKey::from_secret(s), b = ClientKey::from_secret(s);
  EXPECT_EQ(a.id, b.id);
  EXPECT_TRUE(std::ranges::equal(a.psk.span(), b.psk.span()));
  s[31] ^= 1;
  EXPECT_NE(ClientKey::from_secret(s).id, a.id);
}

TEST(ClientKey, RejectsBadText) {
  ClientKey k;
  std::string err;
  EXPECT_FALSE(decode_client_key("tg1_AAAA", k, err));
  EXPECT_NE(err.find("tgc1_"), std::string::npos);
  EXPECT_FALSE(decode_client_key("tgc1_***", k, err));
  EXPECT_NE(err.find("base64url"), std::string::npos);
  EXPECT_FALSE(decode_client_key("tgc1_AAAA", k, err));
  EXPECT_NE(err.find("32 bytes"), std::string::npos);
}

}  // namespace
}  // namespace triglav::crypto
