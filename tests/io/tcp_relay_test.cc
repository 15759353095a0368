#include "io/tcp_relay.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace triglav::io {
namespace {

// A UDP socket on 127.0.0.1 (port chosen by the kernel).
struct Udp {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  Endpoint at;
  Udp() {
    const Endpoint lo = Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0);
    EXPECT_EQ(bind(fd, lo.sa(), lo.len), 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    at = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  ~Udp() { close(fd); }
  void send(const std::vector<std::uint8_t>& d, const Endpoint& to) const {
    ASSERT_EQ(sendto(fd, d.data(), d.size(), 0, to.sa(), to.len), static_cast<ssize_t>(d.size()));
  }
  // One datagram within 2 s, or nothing.
  std::vector<std::uint8_t> recv(Endpoint* from = nullptr) const {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1) return {};
    std::vector<std::uint8_t> b(70000);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const ssize_t n = recvfrom(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) return {};
    if (from != nullptr) *from = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    b.resize(static_cast<std::size_t>(n));
    return b;
  }
};

// A relay whose thread runs (the daemons start it once root is dropped).
struct Relay : TcpRelay {
  explicit Relay(Limits l) : TcpRelay(l) { start(); }
};

// A free TCP port on loopback (bound, then released).
std::uint16_t free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const Endpoint lo = Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0);
  bind(fd, lo.sa(), lo.len);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  const std::uint16_t port = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).port();
  close(fd);
  return port;
}

bool wait_state(const TcpRelay& r, unsigned id, TcpRelay::State want) {
  for (int i = 0; i < 200 && r.state(id) != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return r.state(id) == want;
}

// A server relay listening on a free loopback port for server_side, and client link
// `id` to it for uplink, connected. Returns where the uplink sends; *listening: the
// server's TCP address.
Endpoint link_up(TcpRelay& server, TcpRelay& client, unsigned id, const Udp& server_side, const Udp& uplink,
                 Endpoint* listening = nullptr) {
  const Endpoint tcp_at = Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), free_tcp_port());
  if (listening != nullptr) *listening = tcp_at;
  server.listen(tcp_at, server_side.at);
  const Endpoint relay = client.connect(id, tcp_at, "", 0, uplink.at);
  EXPECT_TRUE(wait_state(client, id, TcpRelay::State::Connected));
  return relay;
}

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<std::uint8_t>(seed + i * 7);
  return d;
}

TEST(TcpRelay, CarriesDatagramsBothWaysWholeAndInOrder) {
  Udp server_side;  // stands in for the server's UDP listening socket
  Udp uplink;       // stands in for a client uplink's sockets
  Relay server(TcpRelay::Limits{}), client(TcpRelay::Limits{});
  const Endpoint relay = link_up(server, client, 3, server_side, uplink);
  EXPECT_EQ(relay.family(), AF_INET);

  Endpoint seen;
  for (std::size_t n : {1u, 1420u, 9000u, 9040u}) {  // 9040: a striped Data packet at the largest MTU
    const auto d = pattern(n, static_cast<std::uint8_t>(n));
    uplink.send(d, relay);
    EXPECT_EQ(server_side.recv(&seen), d) << n;
    EXPECT_EQ(seen.family(), AF_INET);
  }
  uplink.send(pattern(9041, 1), relay);  // larger than the tunnel sends: not framed
  for (int i = 0; i < 200 && client.stats().dropped_too_big == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(client.stats().dropped_too_big, 1u);
  // The way back: to the address the server saw, which is the server relay's socket.
  for (int i = 0; i < 50; ++i) server_side.send(pattern(100 + i, static_cast<std::uint8_t>(i)), seen);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(uplink.recv(), pattern(100 + i, static_cast<std::uint8_t>(i))) << i;
  const auto cs = client.stats(), ss = server.stats();
  EXPECT_EQ(cs.datagrams_to_tcp, 4u);
  EXPECT_EQ(cs.datagrams_from_tcp, 50u);
  EXPECT_EQ(ss.accepted, 1u);
  EXPECT_EQ(ss.open, 1u);
}

// The server's relay tells the workers whose datagrams each of its sockets carries: the
// TCP peer's source, by the socket's loopback address; nothing once the connection ends.
TEST(TcpRelay, TellsWhichTcpPeerEachRelaySocketSpeaksFor) {
  Udp server_side, uplink;
  RelaySources sources;
  TcpRelay::Limits lim;
  lim.sources = &sources;
  Relay server(lim), client(TcpRelay::Limits{});
  const Endpoint relay = link_up(server, client, 0, server_side, uplink);
  uplink.send(pattern(20, 1), relay);
  Endpoint seen;
  ASSERT_FALSE(server_side.recv(&seen).empty());
  EXPECT_EQ(sources.of(seen), source_id(Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 1)));
  EXPECT_EQ(sources.of(Endpoint::from_ipv4(htonl(0x0a000001), seen.port())), 0u) << "not loopback: no relay socket";
  client.close(0);
  for (int i = 0; i < 200 && sources.of(seen) != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(sources.of(seen), 0u);
}

TEST(TcpRelay, HearsOnlyTheUplinkItServes) {
  Udp server_side, uplink, stranger;
  Relay server(TcpRelay::Limits{}), client(TcpRelay::Limits{});
  const Endpoint relay = link_up(server, client, 0, server_side, uplink);
  stranger.send(pattern(64, 1), relay);  // not from the uplink's address: never relayed
  uplink.send(pattern(64, 2), relay);
  EXPECT_EQ(server_side.recv(), pattern(64, 2));
  EXPECT_EQ(client.stats().datagrams_to_tcp, 1u);
}

TEST(TcpRelay, AFailedConnectionSaysWhy) {
  Udp uplink;
  Relay client(TcpRelay::Limits{});
  client.connect(1, Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), free_tcp_port()), "", 0, uplink.at);
  ASSERT_TRUE(wait_state(client, 1, TcpRelay::State::Failed));
  EXPECT_EQ(client.error(1), "tcp connect: Connection refused");
  client.close(1);
  EXPECT_EQ(client.state(1), TcpRelay::State::None);
  EXPECT_EQ(client.stats().open, 0u);
}

TEST(TcpRelay, ServerClosesWhatIsOverTheLimitAndWhatSaysLengthZero) {
  Udp server_side, uplink;
  TcpRelay::Limits lim;
  lim.max_connections = 1;
  Relay server(lim), client(TcpRelay::Limits{});
  Endpoint tcp_at;
  const Endpoint relay = link_up(server, client, 0, server_side, uplink, &tcp_at);
  uplink.send(pattern(10, 3), relay);
  ASSERT_EQ(server_side.recv(), pattern(10, 3));  // the first connection is in

  Relay second(TcpRelay::Limits{});
  Udp uplink2;
  second.connect(0, tcp_at, "", 0, uplink2.at);
  ASSERT_TRUE(wait_state(second, 0, TcpRelay::State::Failed));  // accepted, then closed at once
  EXPECT_EQ(server.stats().refused, 1u);

  // A raw connection that sends a zero length once the first has gone.
  client.close(0);
  for (int i = 0; i < 200 && server.stats().open != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const int raw = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(raw, tcp_at.sa(), tcp_at.len), 0);
  const std::uint8_t zero[2] = {0, 0};
  ASSERT_EQ(write(raw, zero, 2), 2);
  pollfd p{raw, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  char b[4];
  EXPECT_LE(read(raw, b, sizeof b), 0);  // closed by the server
  close(raw);
  EXPECT_EQ(server.stats().closed_bad, 1u);
}

// A length says what is coming, it reserves nothing: connections that send only the
// start of a frame hold just the bytes they sent. A length above the largest datagram
// the tunnel sends closes the connection.
TEST(TcpRelay, ALengthReservesNothingAndAnOversizedOneCloses) {
  Udp server_side;
  Relay server(TcpRelay::Limits{});
  const Endpoint tcp_at = Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), free_tcp_port());
  server.listen(tcp_at, server_side.at);
  constexpr int kConns = 20;
  std::vector<int> raw;
  for (int i = 0; i < kConns; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(fd, tcp_at.sa(), tcp_at.len), 0);
    const std::uint8_t start[12] = {0x23, 0x28, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // 9000 bytes announced, 10 sent
    ASSERT_EQ(write(fd, start, sizeof start), static_cast<ssize_t>(sizeof start));
    raw.push_back(fd);
  }
  for (int i = 0; i < 200 && server.stats().accepted < kConns; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the last bytes read
  const auto st = server.stats();
  EXPECT_EQ(st.open, static_cast<std::uint64_t>(kConns));
  EXPECT_LE(st.buffered, static_cast<std::uint64_t>(kConns) * 64) << "bytes held for " << kConns << " connections";
  EXPECT_GE(st.buffered, static_cast<std::uint64_t>(kConns) * 12);
  // The rest of one frame, byte-exact: it arrives whole.
  const std::vector<std::uint8_t> rest(8990, 0x5a);
  std::vector<std::uint8_t> want(9000, 0x5a);
  for (std::uint8_t i = 0; i < 10; ++i) want[i] = static_cast<std::uint8_t>(i + 1);
  ASSERT_EQ(write(raw[0], rest.data(), rest.size()), static_cast<ssize_t>(rest.size()));
  EXPECT_EQ(server_side.recv(), want);
  for (int fd : raw) close(fd);

  const int big = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(big, tcp_at.sa(), tcp_at.len), 0);
  const std::uint8_t huge[2] = {0xff, 0xff};
  ASSERT_EQ(write(big, huge, 2), 2);
  pollfd p{big, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  char b[4];
  EXPECT_LE(read(big, b, sizeof b), 0);  // closed by the server
  close(big);
  EXPECT_EQ(server.stats().closed_bad, 1u);
}

TEST(TcpRelay, ServerClosesAConnectionTheTunnelNeverAnswers) {
  Udp server_side, uplink;  // server_side reads nothing and answers nothing
  TcpRelay::Limits lim;
  lim.unanswered_timeout_s = 1;
  Relay server(lim), client(TcpRelay::Limits{});
  const Endpoint relay = link_up(server, client, 0, server_side, uplink);
  uplink.send(pattern(32, 4), relay);
  for (int i = 0; i < 500 && client.state(0) != TcpRelay::State::Failed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(client.state(0), TcpRelay::State::Failed);
  EXPECT_EQ(client.error(0), "the other end closed the connection");
  EXPECT_EQ(server.stats().closed_idle, 1u);
}

TEST(TcpRelay, OnlyWhatIsAnAnswerKeepsAConnection) {
  Udp server_side, uplink;
  TcpRelay::Limits lim;
  lim.unanswered_timeout_s = 1;
  lim.is_answer = [](const std::uint8_t* d, std::size_t n) { return n > 0 && d[0] != 0x19; };  // not an Error
  Relay server(lim), client(TcpRelay::Limits{});
  const Endpoint relay = link_up(server, client, 0, server_side, uplink);
  uplink.send(pattern(32, 4), relay);
  Endpoint seen;
  ASSERT_FALSE(server_side.recv(&seen).empty());
  server_side.send({0x19, 3, 0, 0}, seen);  // an Error: still unanswered
  EXPECT_EQ(uplink.recv().size(), 4u);
  for (int i = 0; i < 500 && client.state(0) != TcpRelay::State::Failed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(client.state(0), TcpRelay::State::Failed);
  EXPECT_EQ(server.stats().closed_idle, 1u);
}

TEST(TcpRelay, OneAddressGetsAtMostPerSourceConnections) {
  Udp server_side, a, b;
  TcpRelay::Limits lim;
  lim.per_source = 1;
  Relay server(lim), client(TcpRelay::Limits{});
  Endpoint tcp_at;
  link_up(server, client, 0, server_side, a, &tcp_at);
  client.connect(1, tcp_at, "", 0, b.at);  // the same address (loopback) again: closed at once
  ASSERT_TRUE(wait_state(client, 1, TcpRelay::State::Failed));
  EXPECT_EQ(server.stats().refused, 1u);
  EXPECT_EQ(client.state(0), TcpRelay::State::Connected);
}

TEST(TcpRelay, ListeningOnAPortInUseIsAOneLineError) {
  const Endpoint tcp_at = Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), free_tcp_port());
  Udp target;
  Relay a(TcpRelay::Limits{}), b(TcpRelay::Limits{});
  a.listen(tcp_at, target.at);
  try {
    b.listen(tcp_at, target.at);
    FAIL() << "a second listener on the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot listen on TCP " + tcp_at.to_string() + ": Address already in use");
  }
}

}  // namespace
}  // namespace triglav::io
