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
// and every transport message in both directions with explicit counters.
void replay(const nlohmann::json& v) {
  const auto iprologue = unhex(v["init_prologue"]);
  const auto rprologue = unhex(v["resp_prologue"]);
  const auto rs_pub = unhex(v["init_remote_static"]);
  const auto rs_priv = unhex(v["resp_static"]);
  const auto ie = unhex(v["init_ephemeral"]);
  const auto re = unhex(v["resp_ephemeral"]);
  PublicKey rs{};
  std::copy(rs_pub.begin(), rs_pub.end(), rs.begin());

  auto init = NoiseNk::initiator(rs, iprologue);
  auto resp = NoiseNk::responder(key32(rs_priv), rprologue);
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
  // <- e, ee
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
    seal_in_place(send, ctr, {}, b.data(), p.size());
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
    replay(v);
    ++replayed;
  }
  EXPECT_GT(replayed, 0) << "no " << kNoiseProtocolName << " entry in " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllSources, NoiseVectors,
                         ::testing::Values("noise_nk_cacophony.json", "noise_nk_snow.json",
                                           "noise_nk_noise-c.json", "noise_nk_flynn.json"));

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
