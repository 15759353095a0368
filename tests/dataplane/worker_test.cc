// Two real workers back to back in one process: each gets a UDP socket on loopback
// and, instead of a TUN queue, one end of a SOCK_SEQPACKET socketpair (one read or
// write = one packet, like a TUN fd). No root, no namespaces.
#include "dataplane/worker.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "crypto/aead.h"
#include "io/udp_socket.h"

namespace triglav::dp {
namespace {

constexpr std::uint32_t kClientIp = 0x0255000a;  // 10.0.85.2, network order bytes
constexpr std::uint32_t kServerIp = 0x0155000a;  // 10.0.85.1

std::vector<std::uint8_t> ipv4_udp(std::uint32_t src_be, std::uint32_t dst_be, std::size_t payload,
                                   std::uint8_t fill) {
  std::vector<std::uint8_t> p(28 + payload, fill);
  p[0] = 0x45;
  p[1] = 0;
  p[2] = static_cast<std::uint8_t>(p.size() >> 8);
  p[3] = static_cast<std::uint8_t>(p.size());
  p[8] = 64;
  p[9] = 17;
  std::memcpy(&p[12], &src_be, 4);
  std::memcpy(&p[16], &dst_be, 4);
  return p;
}

struct Side {
  explicit Side(bool server) : qsbr(1), snaps(qsbr) {
    int sp[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    tun_app = sp[0];
    tun_worker = sp[1];
    int on = 1;  // the worker reads its TUN queue non-blocking
    ioctl(tun_worker, FIONBIO, &on);
    evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    udp = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
    session.local_index = server ? 2 : 1;
    session.remote_index = server ? 1 : 2;
    session.group = &group;
    group.inner_ipv4_be = server ? kClientIp : 0;
  }
  ~Side() {
    if (worker) worker->stop();
    close(tun_app);
    close(tun_worker);
    close(evfd);
  }
  void start(bool is_client) {
    auto snap = std::make_unique<Snapshot>();
    snap->by_index.emplace(session.local_index, &session);
    std::array<Session*, kMaxUplinks> ups{};
    ups[0] = &session;
    auto route = make_route(&group, ups, {}, SchedulerConfig{}, 1);
    if (is_client)
      snap->default_route = route.get();
    else
      snap->by_inner_ipv4.emplace(group.inner_ipv4_be, route.get());
    snap->routes.push_back(std::move(route));
    snaps.publish(std::move(snap));
    WorkerConfig c;
    c.id = 0;
    c.tun_fd = tun_worker;
    c.uplink_fds = {udp.fd()};
    c.snapshots = &snaps;
    c.qsbr = &qsbr;
    c.to_control = &queue;
    c.control_eventfd = evfd;
    worker = std::make_unique<Worker>(std::move(c));
    worker->start();
  }

  // Reads one packet from the app end of the "TUN", waiting at most 2 s.
  std::vector<std::uint8_t> read_tun() {
    pollfd p{tun_app, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1) return {};
    std::vector<std::uint8_t> buf(4096);
    const ssize_t n = read(tun_app, buf.data(), buf.size());
    buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return buf;
  }

  std::uint64_t wait_counter(Counter c, std::uint64_t at_least) {
    for (int i = 0; i < 200 && worker->counters().get(c) < at_least; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return worker->counters().get(c);
  }

  Qsbr qsbr;
  SnapshotHolder snaps;
  ControlQueue queue;
  Group group;
  Session session;
  io::UdpSocket udp;
  int tun_app = -1, tun_worker = -1, evfd = -1;
  std::unique_ptr<Worker> worker;
};

class WorkerPair : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init());
    crypto::KeyPair a = crypto::KeyPair::generate(), b = crypto::KeyPair::generate();
    client.session.tx_key = crypto::TransportKey(crypto::SecretKey(a.priv.span()));
    server.session.rx_key = crypto::TransportKey(crypto::SecretKey(a.priv.span()));
    server.session.tx_key = crypto::TransportKey(crypto::SecretKey(b.priv.span()));
    client.session.rx_key = crypto::TransportKey(crypto::SecretKey(b.priv.span()));
    client.session.peer = server.udp.local();
    server.session.peer = client.udp.local();
    server.start(false);
    client.start(true);
  }
  Side server{true};
  Side client{false};
};

TEST_F(WorkerPair, PacketsCrossInBothDirections) {
  for (int i = 0; i < 50; ++i) {
    const auto up = ipv4_udp(kClientIp, kServerIp, 100 + static_cast<std::size_t>(i) * 20,
                             static_cast<std::uint8_t>(i));
    ASSERT_EQ(write(client.tun_app, up.data(), up.size()), static_cast<ssize_t>(up.size()));
    EXPECT_EQ(server.read_tun(), up) << "packet " << i;
    const auto down = ipv4_udp(kServerIp, kClientIp, 1392, static_cast<std::uint8_t>(255 - i));
    ASSERT_EQ(write(server.tun_app, down.data(), down.size()), static_cast<ssize_t>(down.size()));
    EXPECT_EQ(client.read_tun(), down) << "packet " << i;
  }
  EXPECT_EQ(server.worker->counters().get(Counter::RxPackets), 50u);
  EXPECT_EQ(client.worker->counters().get(Counter::TxPackets), 50u);
  EXPECT_EQ(client.worker->counters().get(Counter::RxPackets), 50u);
}

TEST_F(WorkerPair, SpoofedInnerSourceIsDropped) {
  const auto spoofed = ipv4_udp(0x0955000a, kServerIp, 10, 1);
  ASSERT_GT(write(client.tun_app, spoofed.data(), spoofed.size()), 0);
  EXPECT_EQ(server.wait_counter(Counter::DropBadSource, 1), 1u);
  EXPECT_EQ(server.worker->counters().get(Counter::RxPackets), 0u);
}

TEST_F(WorkerPair, GarbageAndForgeriesAreCountedNotDelivered) {
  const io::Endpoint to = server.udp.local();
  io::UdpSocket raw = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
  std::uint8_t junk[200];
  crypto::random_bytes(junk);
  junk[0] = 0x31;  // version 3: malformed
  ASSERT_TRUE(raw.send_to(junk, 200, to));
  ASSERT_TRUE(raw.send_to(junk, 5, to));  // shorter than a header
  // A well-formed Data header for a session that does not exist.
  Header h;
  h.flags = flag::kEncrypted;
  h.receiver = 77;
  encode_header(h, junk);
  ASSERT_TRUE(raw.send_to(junk, 100, to));
  // For the real session, but not sealed with its key.
  h.receiver = server.session.local_index;
  encode_header(h, junk);
  ASSERT_TRUE(raw.send_to(junk, 100, to));
  // A handshake packet goes to the control queue.
  h.type = PacketType::Handshake;
  encode_header(h, junk);
  ASSERT_TRUE(raw.send_to(junk, kInitLen, to));

  EXPECT_EQ(server.wait_counter(Counter::DropMalformed, 2), 2u);
  EXPECT_EQ(server.wait_counter(Counter::DropUnknownIndex, 1), 1u);
  EXPECT_EQ(server.wait_counter(Counter::DropAuth, 1), 1u);
  EXPECT_EQ(server.wait_counter(Counter::HandshakePackets, 1), 1u);
  ControlMessage m;
  ASSERT_TRUE(server.queue.pop(m));
  EXPECT_EQ(m.len, kInitLen);
  EXPECT_EQ(m.from, raw.local());
  EXPECT_EQ(server.worker->counters().get(Counter::RxPackets), 0u);

  // The tunnel still works.
  const auto up = ipv4_udp(kClientIp, kServerIp, 64, 9);
  ASSERT_GT(write(client.tun_app, up.data(), up.size()), 0);
  EXPECT_EQ(server.read_tun(), up);
}

TEST_F(WorkerPair, PingIsAnsweredWithPongThatProvesLiveness) {
  // A keepalive as the client's control thread sends it: sender 15, 8-byte body.
  std::uint8_t pkt[kHeaderLen + 8 + kTagLen] = {};
  Header h;
  h.type = PacketType::Ping;
  h.flags = flag::kEncrypted;
  h.receiver = client.session.remote_index;
  h.counter = std::uint64_t{kControlSender} << kSenderShift;
  encode_header(h, pkt);
  store_le64(pkt + kHeaderLen, 0x1122334455667788ull);
  client.session.tx_key.seal(h.counter, {pkt, kHeaderLen}, pkt + kHeaderLen, 8);
  client.session.last_rx_ns.store(0);
  ASSERT_TRUE(client.udp.send_to(pkt, sizeof pkt, server.udp.local()));
  for (int i = 0; i < 200 && client.session.last_rx_ns.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(client.session.last_rx_ns.load(), 0);  // the Pong came back and verified
  EXPECT_EQ(client.worker->counters().get(Counter::DropAuth), 0u);
  EXPECT_EQ(client.worker->counters().get(Counter::DropUnexpected), 0u);
}

TEST_F(WorkerPair, ServerDropsPacketsForUnknownClients) {
  const auto down = ipv4_udp(kServerIp, 0x0755000a, 10, 1);  // 10.0.85.7: no session
  ASSERT_GT(write(server.tun_app, down.data(), down.size()), 0);
  EXPECT_EQ(server.wait_counter(Counter::DropNoRoute, 1), 1u);
}

}  // namespace
}  // namespace triglav::dp
