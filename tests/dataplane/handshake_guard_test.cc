#include "dataplane/handshake_guard.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <optional>
#include <utility>
#include <vector>

#include "control/handshake.h"
#include "crypto/aead.h"

namespace triglav::dp {
namespace {

using ctl::ClientHandshake;

// Initiations as a client builds them (control/handshake.h) meet the server's guard.
struct GuardFixture : ::testing::Test {
  void SetUp() override { ASSERT_TRUE(crypto::init()); }
  crypto::KeyPair server = crypto::KeyPair::generate();
  InitPayload payload() {
    InitPayload p;
    p.uplink = 2;
    p.sender_index = 0x11223345;
    p.inner_ipv4_be = 0x0255000a;  // 10.0.85.2
    p.timestamp_ns = 42;
    return p;
  }
};

TEST_F(GuardFixture, UnderLoadOnlyCookieHoldersGetADhAndEachSourceIsLimited) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  GuardConfig cfg;
  cfg.load_per_second = 5;
  cfg.burst_per_source = 3;
  cfg.rate_per_source = 2;
  cfg.secret_lifetime_ns = 100'000'000'000;
  HandshakeGuard g(keys, cfg);
  const io::Endpoint alice = io::Endpoint::from_ipv4(0x0200000a, 40000);
  const io::Endpoint spoofed = io::Endpoint::from_ipv4(0x0300000a, 40000);
  std::int64_t now = 1'000'000'000;
  using V = HandshakeGuard::Verdict;
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
  EXPECT_LT(reply.size(), kInitLen);  // no amplification
  // Only the initiation's sender can open it (bound to its index and mac1).
  EXPECT_FALSE(open_cookie_reply(reply, c.sender_index() ^ 1, c.mac1(), keys.cookie));
  ClientHandshake c_other(server.pub, payload());
  EXPECT_FALSE(open_cookie_reply(reply, c.sender_index(), c_other.mac1(), keys.cookie));
  auto cookie = open_cookie_reply(reply, c.sender_index(), c.mac1(), keys.cookie);
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

TEST_F(GuardFixture, UnderLoadInitiationsWithNoBudgetLeftAreDroppedBeforeAnyMac) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  GuardConfig cfg;
  cfg.load_per_second = 5;
  cfg.cookie_burst = 2;
  cfg.cookies_per_source = 1;
  HandshakeGuard g(keys, cfg);
  const io::Endpoint flood = io::Endpoint::from_ipv4(0x0400000a, 40000);
  const io::Endpoint alice = io::Endpoint::from_ipv4(0x0200000a, 40000);
  std::int64_t now = 1'000'000'000;
  using V = HandshakeGuard::Verdict;
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
  auto cookie = open_cookie_reply(g.cookie_reply(c.initiation(), alice), c.sender_index(), c.mac1(), keys.cookie);
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
TEST_F(GuardFixture, WorkersShareOneLoad) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  GuardLoad load;
  GuardConfig cfg;
  cfg.load_per_second = 5;
  cfg.load = &load;
  HandshakeGuard a(keys, cfg), b(keys, cfg);
  const io::Endpoint from = io::Endpoint::from_ipv4(0x0200000a, 40000);
  ClientHandshake c(server.pub, payload());
  using V = HandshakeGuard::Verdict;
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
TEST_F(GuardFixture, AnIpv6Slash64IsOneSource) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  GuardConfig cfg;
  cfg.load_per_second = 0;  // always under load
  cfg.cookie_burst = 5;
  cfg.cookies_per_source = 1;
  HandshakeGuard g(keys, cfg);
  ClientHandshake c(server.pub, payload());
  using V = HandshakeGuard::Verdict;
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
TEST_F(GuardFixture, RelayedInitiationsCountAsTheirTcpPeers) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  io::RelaySources relay;
  const io::Endpoint conn_a = io::Endpoint::loopback(AF_INET, 5000), conn_b = io::Endpoint::loopback(AF_INET, 5001);
  relay.set(conn_a, io::source_id(io::Endpoint::from_ipv4(0x0200000a, 1)));
  relay.set(conn_b, io::source_id(io::Endpoint::from_ipv4(0x0300000a, 1)));
  GuardConfig cfg;
  cfg.load_per_second = 0;
  cfg.cookie_burst = 3;
  cfg.cookies_per_source = 1;
  using V = HandshakeGuard::Verdict;
  ClientHandshake c(server.pub, payload());
  const std::int64_t now = 5'000'000'000;
  auto cookies_for = [&](HandshakeGuard& g, const io::Endpoint& from) {
    int n = 0;
    for (int i = 0; i < 10; ++i) n += g.admit(c.initiation(), from, now) == V::SendCookie;
    return n;
  };
  cfg.relay = &relay;
  HandshakeGuard with(keys, cfg);
  EXPECT_EQ(cookies_for(with, conn_a), 3);
  EXPECT_EQ(cookies_for(with, conn_b), 3) << "another TCP client: a budget of its own";
  relay.set(conn_b, 0);  // its connection closed: the port is plain loopback again
  cfg.relay = nullptr;
  HandshakeGuard without(keys, cfg);
  EXPECT_EQ(cookies_for(without, conn_a), 3);
  EXPECT_EQ(cookies_for(without, conn_b), 0) << "without the relay's sources, all of loopback is one source";
}

// Fixed size, O(1): a new source takes a free or idle entry of its set, never a busy one.
TEST(SourceBuckets, FixedSizeAndOnlyIdleEntriesAreTaken) {
  SourceBuckets b(8);  // 2 sets of 4
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

// --- the gate: one call per unencrypted datagram a server worker receives -------------

Header header_of(std::span<const std::uint8_t> pkt) {
  Header h;
  EXPECT_EQ(decode_header(pkt, h), HeaderError::Ok);
  return h;
}

using Action = HandshakeGate::Outcome::Action;

TEST_F(GuardFixture, GateAnswersProbesThatShowTheAuthKeyAtMost200ASecond) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  HandshakeGate gate(keys);
  const io::Endpoint from = io::Endpoint::from_ipv4(htonl(0x0a000002), 40000);
  std::vector<std::uint8_t> probe(300);
  make_probe(probe, 7, keys.mac1);
  const std::int64_t now = 5'000'000'000;
  auto o = gate.screen(header_of(probe), probe, from, now);
  ASSERT_EQ(o.action, Action::Reply);
  EXPECT_EQ(o.count, Counter::kCount);
  ASSERT_EQ(o.len, kProbeEchoLen);
  EXPECT_EQ(open_probe_echo({o.reply.data(), o.len}, 7, keys.mac1), std::optional<std::uint32_t>(300));
  // Made with another server's key: dropped.
  std::vector<std::uint8_t> forged(300);
  make_probe(forged, 8, HandshakeMacKeys::for_server(crypto::KeyPair::generate().pub).mac1);
  o = gate.screen(header_of(forged), forged, from, now);
  EXPECT_EQ(o.action, Action::Drop);
  EXPECT_EQ(o.count, Counter::DropHandshakeMac);
  // 200 a second are looked at (two so far), then none until the next second.
  for (int i = 0; i < 198; ++i) EXPECT_EQ(gate.screen(header_of(probe), probe, from, now).action, Action::Reply);
  o = gate.screen(header_of(probe), probe, from, now);
  EXPECT_EQ(o.action, Action::Drop);
  EXPECT_EQ(o.count, Counter::DropHandshakeRate);
  EXPECT_EQ(gate.screen(header_of(probe), probe, from, now + 1'000'000'000).action, Action::Reply);
}

TEST_F(GuardFixture, GateLetsAFewInitiationsWithABadMac1ReachTheControlThread) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  HandshakeGate gate(keys);
  const io::Endpoint from = io::Endpoint::from_ipv4(htonl(0x0a000002), 40000);
  ClientHandshake wrong(crypto::KeyPair::generate().pub, payload());  // a wrong AuthKey
  const auto& init = wrong.initiation();
  std::int64_t now = 5'000'000'000;
  // Every one is counted; the first ten a second go on, so the client can be told why.
  for (unsigned i = 0; i < HandshakeGate::kBadMacPerSecond; ++i) {
    const auto o = gate.screen(header_of(init), init, from, now);
    EXPECT_EQ(o.action, Action::ToControl) << i;
    EXPECT_EQ(o.count, Counter::DropHandshakeMac);
  }
  const auto o = gate.screen(header_of(init), init, from, now);
  EXPECT_EQ(o.action, Action::Drop);
  EXPECT_EQ(o.count, Counter::DropHandshakeMac);
  now += 1'000'000'000;
  EXPECT_EQ(gate.screen(header_of(init), init, from, now).action, Action::ToControl);
  // A right one goes on, counted as nothing.
  ClientHandshake right(server.pub, payload());
  const auto ok = gate.screen(header_of(right.initiation()), right.initiation(), from, now);
  EXPECT_EQ(ok.action, Action::ToControl);
  EXPECT_EQ(ok.count, Counter::kCount);
}

TEST_F(GuardFixture, GateDropsWhatOnlyClientsTake) {
  HandshakeGate gate(HandshakeMacKeys::for_server(server.pub));
  const io::Endpoint from = io::Endpoint::from_ipv4(htonl(0x0a000002), 40000);
  std::vector<std::uint8_t> pkt(kInitLen);
  for (auto [type, aux] : {std::pair{PacketType::Handshake, kHandshakeResponse},
                           std::pair{PacketType::Handshake, kHandshakeCookie}, std::pair{PacketType::Error, std::uint8_t{0}},
                           std::pair{PacketType::Handshake, std::uint8_t{9}}}) {
    Header h;
    h.type = type;
    h.aux = aux;
    encode_header(h, pkt.data());
    const auto o = gate.screen(header_of(pkt), pkt, from, 1);
    EXPECT_EQ(o.action, Action::Drop);
    EXPECT_EQ(o.count, Counter::DropUnexpected);
  }
}

TEST_F(GuardFixture, GateUnderLoadAnswersWithACookieReply) {
  const auto keys = HandshakeMacKeys::for_server(server.pub);
  GuardConfig cfg;
  cfg.load_per_second = 2;
  HandshakeGate gate(keys, cfg);
  const io::Endpoint from = io::Endpoint::from_ipv4(htonl(0x0a000002), 40000);
  const std::int64_t now = 5'000'000'000;
  for (int i = 0; i < 2; ++i) {
    ClientHandshake c(server.pub, payload());
    EXPECT_EQ(gate.screen(header_of(c.initiation()), c.initiation(), from, now).action, Action::ToControl);
  }
  ClientHandshake c(server.pub, payload());
  const auto o = gate.screen(header_of(c.initiation()), c.initiation(), from, now);
  ASSERT_EQ(o.action, Action::Reply);
  EXPECT_EQ(o.count, Counter::TxCookieReplies);
  ASSERT_EQ(o.len, kCookieReplyLen);
  EXPECT_TRUE(open_cookie_reply({o.reply.data(), o.len}, c.sender_index(), c.mac1(), keys.cookie));
  EXPECT_TRUE(gate.guard().under_load());
}

}  // namespace
}  // namespace triglav::dp
