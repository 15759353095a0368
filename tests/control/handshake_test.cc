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

TEST_F(Fixture, UnderLoadOnlyCookieHoldersGetADhAndEachSourceIsLimited) {
  const auto keys = dp::HandshakeMacKeys::for_server(server.pub);
  dp::GuardConfig cfg;
  cfg.load_per_second = 5;
  cfg.burst_per_source = 3;
  cfg.rate_per_source = 2;
  cfg.secret_lifetime_ns = 100'000'000'000;
  dp::HandshakeGuard g(keys, cfg);
  const io::Endpoint alice = io::Endpoint::from_ipv4(0x0200000a, 40000);
  const io::Endpoint spoofed = io::Endpoint::from_ipv4(0x0300000a, 40000);
  std::int64_t now = 1'000'000'000;
  using V = dp::HandshakeGuard::Verdict;
  // Not under load: every initiation is answered.
  for (int i = 0; i < 5; ++i) {
    ClientHandshake c(server.pub, payload());
    EXPECT_EQ(g.admit(c.initiation(), alice, now), V::Answer) << i;
  }
  EXPECT_FALSE(g.under_load());
  // The sixth in one second: under load, and without mac2 it gets a cookie reply.
  ClientHandshake c(server.pub, payload());
  EXPECT_EQ(g.admit(c.initiation(), alice, now), V::SendCookie);
  EXPECT_TRUE(g.under_load());
  const auto reply = g.cookie_reply(c.initiation(), alice);
  EXPECT_LT(reply.size(), dp::kInitLen);  // no amplification
  // Only the initiation's sender can open it (bound to its index and mac1).
  EXPECT_FALSE(dp::open_cookie_reply(reply, c.sender_index() ^ 1, c.mac1(), keys.cookie));
  ClientHandshake c_other(server.pub, payload());
  EXPECT_FALSE(dp::open_cookie_reply(reply, c.sender_index(), c_other.mac1(), keys.cookie));
  auto cookie = dp::open_cookie_reply(reply, c.sender_index(), c.mac1(), keys.cookie);
  ASSERT_TRUE(cookie);
  // With the cookie, alice gets through (her burst of 3) ...
  for (int i = 0; i < 3; ++i) {
    ClientHandshake again(server.pub, payload(), nullptr, &*cookie);
    EXPECT_TRUE(again.has_mac2());
    EXPECT_EQ(g.admit(again.initiation(), alice, now), V::Answer) << i;
  }
  // ... then the per-source limit holds her, until tokens come back.
  ClientHandshake fourth(server.pub, payload(), nullptr, &*cookie);
  EXPECT_EQ(g.admit(fourth.initiation(), alice, now), V::RateLimited);
  now += 600'000'000;  // 0.6 s at 2 per second: one token
  ClientHandshake later(server.pub, payload(), nullptr, &*cookie);
  EXPECT_EQ(g.admit(later.initiation(), alice, now), V::Answer);
  // Her cookie is worthless from another address (a spoofer who saw it).
  ClientHandshake stolen(server.pub, payload(), nullptr, &*cookie);
  EXPECT_EQ(g.admit(stolen.initiation(), spoofed, now), V::SendCookie);
  // Cookie replies to one source are limited too (burst 5, one already spent on alice's
  // address, one on the spoofed one): a flood from one address gets a handful.
  int cookies = 0;
  for (int i = 0; i < 20; ++i) cookies += g.admit(c.initiation(), spoofed, now) == V::SendCookie;
  EXPECT_EQ(cookies, 4);
  // The secret rotates: the previous one's cookies still work, older ones do not.
  now += 100'000'000'000;
  ClientHandshake after_one(server.pub, payload(), nullptr, &*cookie);
  for (int i = 0; i < 10; ++i) (void)g.admit(c.initiation(), spoofed, now);  // keep the load up
  EXPECT_EQ(g.admit(after_one.initiation(), alice, now), V::Answer);
  now += 100'000'000'000;
  for (int i = 0; i < 10; ++i) (void)g.admit(c.initiation(), spoofed, now);
  ClientHandshake after_two(server.pub, payload(), nullptr, &*cookie);
  EXPECT_EQ(g.admit(after_two.initiation(), alice, now), V::SendCookie);
  // A long quiet spell: the first initiation after it is answered at once.
  now += 60'000'000'000;
  EXPECT_EQ(g.admit(c.initiation(), alice, now), V::Answer);
  for (int i = 0; i < 10; ++i) (void)g.admit(c.initiation(), spoofed, now);
  EXPECT_TRUE(g.under_load());
  // A quiet second ends the load.
  now += 2'000'000'000;
  (void)g.admit(c.initiation(), alice, now);
  now += 1'000'000'000;
  EXPECT_EQ(g.admit(c.initiation(), alice, now), V::Answer);
  EXPECT_FALSE(g.under_load());
}

TEST_F(Fixture, UnderLoadInitiationsWithNoBudgetLeftAreDroppedBeforeAnyMac) {
  const auto keys = dp::HandshakeMacKeys::for_server(server.pub);
  dp::GuardConfig cfg;
  cfg.load_per_second = 5;
  cfg.cookie_burst = 2;
  cfg.cookies_per_source = 1;
  dp::HandshakeGuard g(keys, cfg);
  const io::Endpoint flood = io::Endpoint::from_ipv4(0x0400000a, 40000);
  const io::Endpoint alice = io::Endpoint::from_ipv4(0x0200000a, 40000);
  std::int64_t now = 1'000'000'000;
  using V = dp::HandshakeGuard::Verdict;
  ClientHandshake c(server.pub, payload());
  // Not under load: nothing is dropped early.
  for (int i = 0; i < 6; ++i) {
    EXPECT_FALSE(g.drop_early(c.initiation(), flood, now)) << i;
    (void)g.admit(c.initiation(), flood, now);
  }
  ASSERT_TRUE(g.under_load());
  // The flood's source still has one cookie reply in its budget (burst 2, one spent):
  // it goes on to mac1 and admit; after that, the source's initiations without mac2
  // are dropped before any MAC.
  EXPECT_FALSE(g.drop_early(c.initiation(), flood, now));
  EXPECT_EQ(g.admit(c.initiation(), flood, now), V::SendCookie);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(g.drop_early(c.initiation(), flood, now)) << i;
  // Junk that never gets past drop_early spends nothing: alice's budget is whole, and
  // an initiation with a cookie (mac2) always goes on to be checked.
  EXPECT_FALSE(g.drop_early(c.initiation(), alice, now));
  EXPECT_EQ(g.admit(c.initiation(), alice, now), V::SendCookie);
  auto cookie = dp::open_cookie_reply(g.cookie_reply(c.initiation(), alice), c.sender_index(), c.mac1(), keys.cookie);
  ASSERT_TRUE(cookie);
  ClientHandshake with_cookie(server.pub, payload(), nullptr, &*cookie);
  EXPECT_FALSE(g.drop_early(with_cookie.initiation(), flood, now));
  // The early drops kept the load up: a second later the window still counts as loaded.
  now += 1'000'000'000;
  (void)g.admit(c.initiation(), alice, now);
  EXPECT_TRUE(g.under_load());
  // The source's budget refills with time (1 a second).
  now += 1'500'000'000;
  EXPECT_FALSE(g.drop_early(c.initiation(), flood, now));
}

// "Under load" is the whole server's view: workers share one count.
TEST_F(Fixture, WorkersShareOneLoad) {
  const auto keys = dp::HandshakeMacKeys::for_server(server.pub);
  dp::GuardLoad load;
  dp::GuardConfig cfg;
  cfg.load_per_second = 5;
  cfg.load = &load;
  dp::HandshakeGuard a(keys, cfg), b(keys, cfg);
  const io::Endpoint from = io::Endpoint::from_ipv4(0x0200000a, 40000);
  ClientHandshake c(server.pub, payload());
  using V = dp::HandshakeGuard::Verdict;
  const std::int64_t now = 7'000'000'000;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.admit(c.initiation(), from, now), V::Answer);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(b.admit(c.initiation(), from, now), V::Answer);
  EXPECT_EQ(b.admit(c.initiation(), from, now), V::SendCookie) << "the sixth of the server's second";
  EXPECT_TRUE(b.under_load());
  EXPECT_EQ(a.admit(c.initiation(), from, now), V::SendCookie) << "and the other worker sees it too";
  // The next second is still loaded (the last one was over), the one after is not.
  EXPECT_EQ(a.admit(c.initiation(), from, now + 1'000'000'000), V::SendCookie);
  EXPECT_EQ(a.admit(c.initiation(), from, now + 3'000'000'000), V::Answer);
}

// One IPv6 /64 is one source: its addresses share the per-source budgets. Other /64s,
// and IPv4 addresses, have their own.
TEST_F(Fixture, AnIpv6Slash64IsOneSource) {
  const auto keys = dp::HandshakeMacKeys::for_server(server.pub);
  dp::GuardConfig cfg;
  cfg.load_per_second = 0;  // always under load
  cfg.cookie_burst = 5;
  cfg.cookies_per_source = 1;
  dp::HandshakeGuard g(keys, cfg);
  ClientHandshake c(server.pub, payload());
  using V = dp::HandshakeGuard::Verdict;
  auto v6 = [](std::uint8_t net, std::uint8_t host) {
    std::uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, net, 0, 0, 0, 0, 0, 0, host, 1};
    return io::Endpoint::from_ipv6(a, 40000);
  };
  const std::int64_t now = 5'000'000'000;
  int cookies = 0;
  for (int i = 0; i < 50; ++i) cookies += g.admit(c.initiation(), v6(1, static_cast<std::uint8_t>(i)), now) == V::SendCookie;
  EXPECT_EQ(cookies, 5) << "50 addresses of one /64 share its burst of 5";
  EXPECT_EQ(g.admit(c.initiation(), v6(2, 0), now), V::SendCookie) << "another /64";
  EXPECT_EQ(g.admit(c.initiation(), io::Endpoint::from_ipv4(0x0200000a, 1), now), V::SendCookie);
}

// Datagrams the TCP relay passes on come from loopback; the guard counts them as the
// TCP peer's, so one TCP client cannot use up the budget of every other.
TEST_F(Fixture, RelayedInitiationsCountAsTheirTcpPeers) {
  const auto keys = dp::HandshakeMacKeys::for_server(server.pub);
  io::RelaySources relay;
  const io::Endpoint conn_a = io::Endpoint::loopback(AF_INET, 5000), conn_b = io::Endpoint::loopback(AF_INET, 5001);
  relay.set(conn_a, io::source_id(io::Endpoint::from_ipv4(0x0200000a, 1)));
  relay.set(conn_b, io::source_id(io::Endpoint::from_ipv4(0x0300000a, 1)));
  dp::GuardConfig cfg;
  cfg.load_per_second = 0;
  cfg.cookie_burst = 3;
  cfg.cookies_per_source = 1;
  using V = dp::HandshakeGuard::Verdict;
  ClientHandshake c(server.pub, payload());
  const std::int64_t now = 5'000'000'000;
  auto cookies_for = [&](dp::HandshakeGuard& g, const io::Endpoint& from) {
    int n = 0;
    for (int i = 0; i < 10; ++i) n += g.admit(c.initiation(), from, now) == V::SendCookie;
    return n;
  };
  cfg.relay = &relay;
  dp::HandshakeGuard with(keys, cfg);
  EXPECT_EQ(cookies_for(with, conn_a), 3);
  EXPECT_EQ(cookies_for(with, conn_b), 3) << "another TCP client: a budget of its own";
  relay.set(conn_b, 0);  // its connection closed: the port is plain loopback again
  cfg.relay = nullptr;
  dp::HandshakeGuard without(keys, cfg);
  EXPECT_EQ(cookies_for(without, conn_a), 3);
  EXPECT_EQ(cookies_for(without, conn_b), 0) << "without the relay's sources, all of loopback is one source";
}

// Fixed size, O(1): a new source takes a free or idle entry of its set, never a busy one.
TEST(SourceBuckets, FixedSizeAndOnlyIdleEntriesAreTaken) {
  dp::SourceBuckets b(8);  // 2 sets of 4
  std::int64_t now = 1'000'000'000;
  // Keys 2, 4, 6, 8 fall in set 0 (key & 1 == 0); a fifth there finds no room while
  // the four are busy.
  for (std::uint64_t k : {2u, 4u, 6u, 8u}) EXPECT_TRUE(b.take(k, 1, 1, now));
  EXPECT_FALSE(b.take(10, 1, 1, now));
  EXPECT_TRUE(b.take(3, 1, 1, now)) << "the other set has room";
  EXPECT_EQ(b.used(), 5u);
  now += 1'500'000'000;
  EXPECT_TRUE(b.take(10, 1, 1, now)) << "an entry idle for over a second is taken";
  EXPECT_EQ(b.used(), 5u);
  for (std::uint64_t k = 100; k < 10'000; ++k) (void)b.take(k, 1, 1, now + static_cast<std::int64_t>(k) * 2'000'000'000);
  EXPECT_LE(b.used(), 8u);
  EXPECT_TRUE(b.peek(999'999, 1, 1, now)) << "peek adds nothing";
  EXPECT_LE(b.used(), 8u);
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
