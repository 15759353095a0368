#include "crypto/noise.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "crypto/aead.h"
#include "tests/vectors.h"

namespace triglav::crypto {
namespace {

using test::unhex;

std::span<const std::uint8_t, kKeyLen> key32(const std::vector<std::uint8_t>& v) {
  EXPECT_EQ(v.size(), kKeyLen);
  return std::span<const std::uint8_t, kKeyLen>(v.data(), kKeyLen);
}

// Replays one public vector: both handshake messages, the handshake hash when given,
// and every transport message in both directions with explicit counters. For NKpsk2 the
// responder is given its psk only after reading message 1, as the server does.
void replay(const nlohmann::json& v, bool psk) {
  const auto iprologue = unhex(v["init_prologue"]);
  const auto rprologue = unhex(v["resp_prologue"]);
  const auto rs_pub = unhex(v["init_remote_static"]);
  const auto rs_priv = unhex(v["resp_static"]);
  const auto ie = unhex(v["init_ephemeral"]);
  const auto re = unhex(v["resp_ephemeral"]);
  PublicKey rs{};
  std::copy(rs_pub.begin(), rs_pub.end(), rs.begin());

  std::vector<std::uint8_t> ipsk, rpsk;
  if (psk) {
    ASSERT_EQ(v["init_psks"].size(), 1u);
    ipsk = unhex(v["init_psks"][0]);
    rpsk = unhex(v["resp_psks"][0]);
  }
  auto init = psk ? NoiseNk::initiator_psk(rs, iprologue, key32(ipsk)) : NoiseNk::initiator(rs, iprologue);
  auto resp = psk ? NoiseNk::responder_psk(key32(rs_priv), rprologue) : NoiseNk::responder(key32(rs_priv), rprologue);
  init.set_ephemeral_for_test(key32(ie));
  resp.set_ephemeral_for_test(key32(re));

  const auto& msgs = v["messages"];
  ASSERT_GE(msgs.size(), 2u);
  std::vector<std::uint8_t> buf(1024), out(1024);
  // -> e, es
  auto p0 = unhex(msgs[0]["payload"]);
  auto c0 = unhex(msgs[0]["ciphertext"]);
  auto n = init.write_message(p0, buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(std::vector<std::uint8_t>(buf.begin(), buf.begin() + *n), c0);
  auto r = resp.read_message(c0, out);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.begin() + *r), p0);
  if (psk) resp.set_psk(key32(rpsk));
  // <- e, ee (, psk)
  auto p1 = unhex(msgs[1]["payload"]);
  auto c1 = unhex(msgs[1]["ciphertext"]);
  n = resp.write_message(p1, buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(std::vector<std::uint8_t>(buf.begin(), buf.begin() + *n), c1);
  r = init.read_message(c1, out);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.begin() + *r), p1);

  ASSERT_TRUE(init.complete());
  ASSERT_TRUE(resp.complete());
  EXPECT_EQ(init.handshake_hash(), resp.handshake_hash());
  if (v.contains("handshake_hash")) {
    const auto hh = unhex(v["handshake_hash"]);
    EXPECT_EQ(std::vector<std::uint8_t>(init.handshake_hash().begin(), init.handshake_hash().end()), hh);
  }

  const TransportKeys ik = init.split();
  const TransportKeys rk = resp.split();
  std::uint64_t n_i2r = 0, n_r2i = 0;
  for (std::size_t i = 2; i < msgs.size(); ++i) {
    auto p = unhex(msgs[i]["payload"]);
    auto c = unhex(msgs[i]["ciphertext"]);
    const bool from_init = (i % 2) == 0;
    const SecretKey& send = from_init ? ik.send : rk.send;
    const SecretKey& recv = from_init ? rk.recv : ik.recv;
    const std::uint64_t ctr = from_init ? n_i2r++ : n_r2i++;
    std::vector<std::uint8_t> b(p);
    b.resize(p.size() + kTagLen);
    EXPECT_TRUE(seal_in_place(send, ctr, {}, b.data(), p.size()));
    EXPECT_EQ(b, c) << "transport message " << i;
    ASSERT_TRUE(open_in_place(recv, ctr, {}, b.data(), b.size()));
    EXPECT_EQ(std::vector<std::uint8_t>(b.begin(), b.begin() + p.size()), p);
  }
}

class NoiseVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(NoiseVectors, NkChaChaPolyBlake2b) {
  ASSERT_TRUE(init());
  TRIGLAV_REQUIRE_VECTOR(text, GetParam());
  const auto doc = nlohmann::json::parse(*text);
  int replayed = 0;
  for (const auto& v : doc["vectors"]) {
    if (v["protocol_name"] != kNoiseProtocolName) continue;
    if (v.contains("init_psks") && !v["init_psks"].empty()) continue;
    SCOPED_TRACE(GetParam() + std::string(" entry ") + std::to_string(replayed));
    replay(v, false);
    ++replayed;
  }
  EXPECT_GT(replayed, 0) << "no " << kNoiseProtocolName << " entry in " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllSources, NoiseVectors,
                         ::testing::Values("noise_nk_cacophony.json", "noise_nk_snow.json",
                                           "noise_nk_noise-c.json", "noise_nk_flynn.json"));

// The pattern that authorises clients (docs/PROTOCOL.md); snow and noise-c have none.
class NoisePskVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(NoisePskVectors, NkPsk2ChaChaPolyBlake2b) {
  ASSERT_TRUE(init());
  TRIGLAV_REQUIRE_VECTOR(text, GetParam());
  const auto doc = nlohmann::json::parse(*text);
  int replayed = 0;
  for (const auto& v : doc["vectors"]) {
    if (v["protocol_name"] != kNoisePskProtocolName) continue;
    SCOPED_TRACE(GetParam() + std::string(" entry ") + std::to_string(replayed));
    replay(v, true);
    ++replayed;
  }
  EXPECT_GT(replayed, 0) << "no " << kNoisePskProtocolName << " entry in " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllSources, NoisePskVectors,
                         ::testing::Values("noise_nk_cacophony.json", "noise_nk_flynn.json"));

TEST(NoiseNkPsk2, WrongOrMissingPskNeverCompletes) {
  ASSERT_TRUE(init());
  KeyPair server = KeyPair::generate();
  SecretKey a, b;
  random_bytes({a.data(), kKeyLen});
  random_bytes({b.data(), kKeyLen});
  std::vector<std::uint8_t> m1(256), m2(256), pl(256);
  const std::uint8_t hello[3] = {1, 2, 3};

  // The responder reads message 1 whatever the psk (its payload names the client) ...
  auto i = NoiseNk::initiator_psk(server.pub, {}, a.span());
  auto n1 = i.write_message(hello, m1);
  ASSERT_TRUE(n1);
  auto r = NoiseNk::responder_psk(server.priv.span(), {});
  auto got = r.read_message({m1.data(), *n1}, pl);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 3u);
  // ... cannot answer before it chose one ...
  EXPECT_FALSE(r.write_message({}, m2));
  // ... and an answer under another psk does not authenticate.
  r.set_psk(b.span());
  auto n2 = r.write_message({}, m2);
  ASSERT_TRUE(n2);
  EXPECT_FALSE(i.read_message({m2.data(), *n2}, pl));
  EXPECT_FALSE(i.complete());

  // The same psk completes with equal keys.
  auto i2 = NoiseNk::initiator_psk(server.pub, {}, a.span());
  n1 = i2.write_message(hello, m1);
  auto r2 = NoiseNk::responder_psk(server.priv.span(), {});
  ASSERT_TRUE(r2.read_message({m1.data(), *n1}, pl));
  r2.set_psk(a.span());
  n2 = r2.write_message({}, m2);
  ASSERT_TRUE(i2.read_message({m2.data(), *n2}, pl));
  const TransportKeys ik = i2.split(), rk = r2.split();
  EXPECT_TRUE(std::ranges::equal(ik.send.span(), rk.recv.span()));
  EXPECT_TRUE(std::ranges::equal(ik.recv.span(), rk.send.span()));

  // An NK initiator and an NKpsk2 responder never agree (the protocol names differ).
  auto nk = NoiseNk::initiator(server.pub, {});
  n1 = nk.write_message(hello, m1);
  auto r3 = NoiseNk::responder_psk(server.priv.span(), {});
  EXPECT_FALSE(r3.read_message({m1.data(), *n1}, pl));
}

TEST(Blake2b, KnownAnswers) {
  TRIGLAV_REQUIRE_VECTOR(text, "blake2b-kat.json");
  const auto doc = nlohmann::json::parse(*text);
  int unkeyed = 0;
  for (const auto& row : doc) {
    if (!row["key"].get<std::string>().empty()) continue;  // keyed BLAKE2b is not used
    std::array<std::uint8_t, kHashLen> out{};
    blake2b(out, unhex(row["in"]));
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.end()), unhex(row["out"]));
    ++unkeyed;
  }
  EXPECT_EQ(unkeyed, 256);
}

TEST(NoiseNk, WrongResponderKeyFailsAndPoisons) {
  ASSERT_TRUE(init());
  KeyPair server = KeyPair::generate();
  KeyPair other = KeyPair::generate();
  auto init_side = NoiseNk::initiator(other.pub, {});
  auto resp = NoiseNk::responder(server.priv.span(), {});
  std::array<std::uint8_t, 128> msg{}, out{};
  auto n = init_side.write_message({}, msg);
  ASSERT_TRUE(n);
  EXPECT_FALSE(resp.read_message({msg.data(), *n}, out));
  EXPECT_FALSE(resp.complete());
  EXPECT_FALSE(resp.write_message({}, msg));  // unusable after a failed read
}

TEST(NoiseNk, TamperedMessagesAreRejected) {
  ASSERT_TRUE(init());
  KeyPair server = KeyPair::generate();
  for (std::size_t flip = 0; flip < 48; flip += 7) {
    auto i = NoiseNk::initiator(server.pub, {});
    auto r = NoiseNk::responder(server.priv.span(), {});
    std::array<std::uint8_t, 128> msg{}, out{};
    auto n = i.write_message({}, msg);
    ASSERT_TRUE(n);
    msg[flip] ^= 0x01;
    EXPECT_FALSE(r.read_message({msg.data(), *n}, out)) << "flip at " << flip;
  }
}

TEST(NoiseNk, TruncatedAndOutOfTurnMessages) {
  ASSERT_TRUE(init());
  KeyPair server = KeyPair::generate();
  auto i = NoiseNk::initiator(server.pub, {});
  std::array<std::uint8_t, 128> msg{}, out{};
  EXPECT_FALSE(i.read_message({msg.data(), 48}, out));  // initiator cannot read first
  auto r = NoiseNk::responder(server.priv.span(), {});
  EXPECT_FALSE(r.write_message({}, msg));  // responder cannot write first
  auto r2 = NoiseNk::responder(server.priv.span(), {});
  EXPECT_FALSE(r2.read_message({msg.data(), 47}, out));  // shorter than e + tag
}

}  // namespace
}  // namespace triglav::crypto
