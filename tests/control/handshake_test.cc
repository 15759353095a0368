#include "control/handshake.h"

#include "dataplane/handshake_guard.h"

#include <gtest/gtest.h>

#include "crypto/aead.h"

namespace triglav::ctl {
namespace {

struct Fixture : ::testing::Test {
  void SetUp() override { ASSERT_TRUE(crypto::init()); }
  crypto::KeyPair server = crypto::KeyPair::generate();
  dp::InitPayload payload() {
    dp::InitPayload p;
    p.uplink = 2;
    p.sender_index = 0x11223345;
    p.inner_ipv4_be = 0x0255000a;  // 10.0.85.2
    p.timestamp_ns = 42;
    return p;
  }
  // Whether a client that sent a plain initiation (no offers) takes a response whose
  // payload `set` fills in.
  bool unoffered_response_taken(void (*set)(dp::ResponsePayload&)) {
    ClientHandshake c(server.pub, payload());
    HandshakeReject why{};
    auto r = answer_initiation(server.priv.span(), c.initiation(), why,
                               [set](const dp::InitPayload&, dp::ResponsePayload& out) {
                                 out.sender_index = 5;
                                 out.prefix_len = 24;
                                 set(out);
                                 return true;
                               });
    EXPECT_TRUE(r);
    EXPECT_EQ(r->init.ciphers, 0);
    return r && c.finish(r->response).has_value();
  }
  MakeResponse accept_with(std::uint32_t index) {
    return [index](const dp::InitPayload&, dp::ResponsePayload& out) {
      out.sender_index = index;
      out.server_ipv4_be = 0x0155000a;
      out.prefix_len = 24;
      out.mtu = 1420;
      return true;
    };
  }
};

TEST_F(Fixture, BothSidesAgreeOnKeysAndIndices) {
  ClientHandshake c(server.pub, payload());
  HandshakeReject why{};
  auto r = answer_initiation(server.priv.span(), c.initiation(), why, accept_with(0xabcdef01));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->uplink, 2);
  EXPECT_EQ(r->init.sender_index, 0x11223345u);
  EXPECT_EQ(r->init.inner_ipv4_be, 0x0255000au);
  EXPECT_EQ(r->init.timestamp_ns, 42u);
  auto est = c.finish(r->response);
  ASSERT_TRUE(est);
  EXPECT_EQ(est->response.sender_index, 0xabcdef01u);
  EXPECT_EQ(est->response.prefix_len, 24);
  EXPECT_EQ(est->response.mtu, 1420);
  // Client send key is server receive key and the other way round.
  std::uint8_t buf[32] = {1, 2, 3};
  EXPECT_TRUE(crypto::seal_in_place(est->keys.send, 7, {}, buf, 16));
  EXPECT_TRUE(crypto::open_in_place(r->keys.recv, 7, {}, buf, 32));
  EXPECT_TRUE(crypto::seal_in_place(r->keys.send, 9, {}, buf, 16));
  EXPECT_TRUE(crypto::open_in_place(est->keys.recv, 9, {}, buf, 32));
}

TEST_F(Fixture, TheTransportCipherIsOfferedInTheInitiationAndChosenInTheResponse) {
  // The offer travels encrypted in the initiation, the choice in the response: both are
  // authenticated by the handshake, so nobody in between can change either.
  auto choose = [](std::uint8_t cipher) {
    return [cipher](const dp::InitPayload& in, dp::ResponsePayload& out) {
      out.sender_index = 5;
      out.prefix_len = 24;
      out.cipher = (in.ciphers & dp::kOfferAes256Gcm) != 0 ? cipher : 0;
      return true;
    };
  };
  dp::InitPayload offer = payload();
  offer.ciphers = dp::kOfferAes256Gcm;
  {
    ClientHandshake c(server.pub, offer);
    HandshakeReject why{};
    auto r = answer_initiation(server.priv.span(), c.initiation(), why, choose(1));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->init.ciphers, dp::kOfferAes256Gcm);
    EXPECT_EQ(r->answer.cipher, 1);
    auto est = c.finish(r->response);
    ASSERT_TRUE(est);
    EXPECT_EQ(est->response.cipher, 1);
  }
  {  // the server may keep ChaCha20-Poly1305 although AES-256-GCM was offered
    ClientHandshake c(server.pub, offer);
    HandshakeReject why{};
    auto r = answer_initiation(server.priv.span(), c.initiation(), why, choose(0));
    ASSERT_TRUE(r);
    auto est = c.finish(r->response);
    ASSERT_TRUE(est);
    EXPECT_EQ(est->response.cipher, 0);
  }
  // a response choosing a cipher the client never offered is not an answer
  EXPECT_FALSE(unoffered_response_taken([](dp::ResponsePayload& out) { out.cipher = 1; }));
}

// Taking Data with partial checksums is offered and agreed the same way: a response that
// agrees to it although the initiation did not offer it is not an answer (a peer from
// before the bit would drop such segments).
TEST_F(Fixture, PartialChecksumsAreOfferedAndAgreed) {
  auto agree = [](bool yes) {
    return [yes](const dp::InitPayload& in, dp::ResponsePayload& out) {
      out.sender_index = 5;
      out.prefix_len = 24;
      out.checksum_partial = yes && (in.ciphers & dp::kOfferChecksumPartial) != 0;
      return true;
    };
  };
  dp::InitPayload offer = payload();
  offer.ciphers = dp::kOfferChecksumPartial;
  {
    ClientHandshake c(server.pub, offer);
    HandshakeReject why{};
    auto r = answer_initiation(server.priv.span(), c.initiation(), why, agree(true));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->init.ciphers, dp::kOfferChecksumPartial);
    auto est = c.finish(r->response);
    ASSERT_TRUE(est);
    EXPECT_TRUE(est->response.checksum_partial);
    EXPECT_EQ(est->response.cipher, 0);
  }
  {  // a server from before the bit ignores the offer: whole checksums both ways
    ClientHandshake c(server.pub, offer);
    HandshakeReject why{};
    auto r = answer_initiation(server.priv.span(), c.initiation(), why, agree(false));
    ASSERT_TRUE(r);
    auto est = c.finish(r->response);
    ASSERT_TRUE(est);
    EXPECT_FALSE(est->response.checksum_partial);
  }
  // agreed without an offer: invalid
  EXPECT_FALSE(unoffered_response_taken([](dp::ResponsePayload& out) { out.checksum_partial = true; }));
  EXPECT_FALSE(unoffered_response_taken([](dp::ResponsePayload& out) { out.striped = true; }));
  EXPECT_FALSE(unoffered_response_taken([](dp::ResponsePayload& out) { out.fragments = true; }));
  EXPECT_TRUE(unoffered_response_taken([](dp::ResponsePayload&) {})) << "the same response without it is taken";
}

TEST_F(Fixture, WrongServerKeyIsADecryptReject) {
  crypto::KeyPair other = crypto::KeyPair::generate();
  ClientHandshake c(other.pub, payload());
  HandshakeReject why{};
  EXPECT_FALSE(answer_initiation(server.priv.span(), c.initiation(), why, accept_with(1)));
  EXPECT_EQ(why, HandshakeReject::Decrypt);
}

TEST_F(Fixture, MalformedInitiationsAreRejected) {
  ClientHandshake c(server.pub, payload());
  auto pkt = c.initiation();
  HandshakeReject why{};
  // Every length but the exact one.
  for (std::size_t len = 0; len < pkt.size(); ++len) {
    EXPECT_FALSE(answer_initiation(server.priv.span(), {pkt.data(), len}, why, accept_with(1)));
    EXPECT_EQ(why, HandshakeReject::Malformed);
  }
  auto bad = pkt;
  bad[3] = dp::kHandshakeResponse;  // wrong message number
  EXPECT_FALSE(answer_initiation(server.priv.span(), bad, why, accept_with(1)));
  EXPECT_EQ(why, HandshakeReject::Malformed);
  bad = pkt;
  bad[2] ^= 1;  // header uplink id differs from the authenticated one (a replay aimed elsewhere)
  EXPECT_FALSE(answer_initiation(server.priv.span(), bad, why, accept_with(1)));
  EXPECT_EQ(why, HandshakeReject::Malformed);
  bad = pkt;
  bad[8] ^= 1;  // header sender index differs from the authenticated one
  EXPECT_FALSE(answer_initiation(server.priv.span(), bad, why, accept_with(1)));
  EXPECT_EQ(why, HandshakeReject::Malformed);
  bad = pkt;
  bad[40] ^= 1;  // tampered Noise message
  EXPECT_FALSE(answer_initiation(server.priv.span(), bad, why, accept_with(1)));
  EXPECT_EQ(why, HandshakeReject::Decrypt);
}

TEST_F(Fixture, RefusedClientGetsNoResponse) {
  ClientHandshake c(server.pub, payload());
  HandshakeReject why{};
  auto r = answer_initiation(server.priv.span(), c.initiation(), why,
                             [](const dp::InitPayload&, dp::ResponsePayload&) { return false; });
  EXPECT_FALSE(r);
  EXPECT_EQ(why, HandshakeReject::Refused);
}

TEST_F(Fixture, ClientIgnoresForeignOrTamperedResponses) {
  ClientHandshake c(server.pub, payload());
  HandshakeReject why{};
  auto r = answer_initiation(server.priv.span(), c.initiation(), why, accept_with(5));
  ASSERT_TRUE(r);
  auto bad = r->response;
  bad[4] ^= 1;  // addressed to another initiation
  EXPECT_FALSE(c.finish(bad));
  ClientHandshake c2(server.pub, payload());
  auto bad2 = r->response;
  bad2[60] ^= 1;
  EXPECT_FALSE(c2.finish(bad2));
  EXPECT_FALSE(c2.finish({bad2.data(), bad2.size() - 1}));
}

TEST_F(Fixture, ClientKeyHandshakeCompletesOnlyWithTheListedKey) {
  const crypto::ClientKey alice = crypto::ClientKey::generate();
  const crypto::ClientKey mallory = crypto::ClientKey::generate();
  const FindClientKey find = [&](const crypto::ClientKeyId& id) -> const crypto::SecretKey* {
    return id == alice.id ? &alice.psk : nullptr;
  };
  HandshakeReject why{};
  // Alice: the server learns her key id and both sides agree.
  ClientHandshake a(server.pub, payload(), &alice);
  auto r = answer_initiation(server.priv.span(), a.initiation(), why, accept_with(9), find);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->init.key_id, alice.id);
  auto est = a.finish(r->response);
  ASSERT_TRUE(est);
  std::uint8_t buf[32] = {1, 2, 3};
  EXPECT_TRUE(crypto::seal_in_place(est->keys.send, 1, {}, buf, 16));
  EXPECT_TRUE(crypto::open_in_place(r->keys.recv, 1, {}, buf, 32));

  // An unknown key is refused before a response exists.
  ClientHandshake m(server.pub, payload(), &mallory);
  EXPECT_FALSE(answer_initiation(server.priv.span(), m.initiation(), why, accept_with(9), find));
  EXPECT_EQ(why, HandshakeReject::ClientKeyRejected);

  // Mallory naming Alice's id (she cannot know it, but say she did) gets a response
  // that does not complete for her: it is keyed with Alice's psk.
  dp::InitPayload p = payload();
  crypto::ClientKey forged = crypto::ClientKey::generate();
  forged.id = alice.id;
  ClientHandshake f(server.pub, p, &forged);
  r = answer_initiation(server.priv.span(), f.initiation(), why, accept_with(9), find);
  ASSERT_TRUE(r);
  EXPECT_FALSE(f.finish(r->response));

  // Plain NK to a server that authorises clients: refused, without a DH.
  ClientHandshake plain(server.pub, payload());
  EXPECT_FALSE(answer_initiation(server.priv.span(), plain.initiation(), why, accept_with(9), find));
  EXPECT_EQ(why, HandshakeReject::ClientKeyRequired);
  // A keyed initiation to an open server: refused.
  ClientHandshake a2(server.pub, payload(), &alice);
  EXPECT_FALSE(answer_initiation(server.priv.span(), a2.initiation(), why, accept_with(9)));
  EXPECT_EQ(why, HandshakeReject::ClientKeyRejected);
  // Unknown header flags are malformed.
  auto bad = plain.initiation();
  bad[1] |= 0x80;
  EXPECT_FALSE(answer_initiation(server.priv.span(), bad, why, accept_with(9)));
  EXPECT_EQ(why, HandshakeReject::Malformed);
}

TEST_F(Fixture, Mac1ProvesKnowledgeOfTheServerKey) {
  const auto keys = dp::HandshakeMacKeys::for_server(server.pub);
  ClientHandshake c(server.pub, payload());
  EXPECT_TRUE(dp::initiation_mac1_ok(c.initiation(), keys.mac1));
  EXPECT_FALSE(c.has_mac2());
  auto bad = c.initiation();
  bad[20] ^= 1;
  EXPECT_FALSE(dp::initiation_mac1_ok(bad, keys.mac1));
  EXPECT_FALSE(dp::initiation_mac1_ok({c.initiation().data(), dp::kInitLen - 1}, keys.mac1));
  ClientHandshake other(crypto::KeyPair::generate().pub, payload());
  EXPECT_FALSE(dp::initiation_mac1_ok(other.initiation(), keys.mac1));
  // The macs are not part of the Noise message: the server still answers.
  HandshakeReject why{};
  EXPECT_TRUE(answer_initiation(server.priv.span(), c.initiation(), why, accept_with(3)));
}

TEST_F(Fixture, ErrorPacketLayout) {
  auto e = make_error(0x01020304, dp::ErrorCode::HandshakeFailed);
  dp::Header h;
  ASSERT_EQ(dp::decode_header(e, h), dp::HeaderError::Ok);
  EXPECT_EQ(h.type, dp::PacketType::Error);
  EXPECT_EQ(h.aux, static_cast<std::uint8_t>(dp::ErrorCode::HandshakeFailed));
  EXPECT_EQ(h.receiver, 0x01020304u);
  EXPECT_LT(e.size(), dp::kInitLen);  // never larger than what provoked it
}

TEST(Handshake, AddressDigestIgnoresThePortAndTellsAddressesApart) {
  const io::Endpoint a = io::Endpoint::from_ipv4(0x0100000a, 7443);
  const io::Endpoint a2 = io::Endpoint::from_ipv4(0x0100000a, 1);
  const io::Endpoint b = io::Endpoint::from_ipv4(0x0200000a, 7443);
  std::uint8_t v6[16] = {0xfd};
  const io::Endpoint c = io::Endpoint::from_ipv6(v6, 7443);
  EXPECT_EQ(address_digest(a), address_digest(a2));
  EXPECT_NE(address_digest(a), address_digest(b));
  EXPECT_NE(address_digest(a), address_digest(c));
  EXPECT_LE(dp::kResponseLen, dp::kInitLen);  // no amplification
}

}  // namespace
}  // namespace triglav::ctl
