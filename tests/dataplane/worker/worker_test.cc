// Two real workers back to back in one process: each gets a UDP socket on loopback
// and, instead of a TUN queue, one end of a SOCK_SEQPACKET socketpair (one read or
// write = one packet, like a TUN fd). No root, no namespaces.
#include "dataplane/worker/worker.h"

#include <arpa/inet.h>
#include <netinet/udp.h>
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
#include "dataplane/offload.h"
#include "io/clock.h"
#include "io/udp_socket.h"
#include "tests/support/packets.h"

namespace triglav::dp {
namespace {

using test::kClientIp;
using test::kServerIp;

// A UDP packet whose UDP header and payload are all `fill` bytes.
std::vector<std::uint8_t> ipv4_udp(std::uint32_t src_be, std::uint32_t dst_be, std::size_t payload,
                                   std::uint8_t fill) {
  std::vector<std::uint8_t> p(28 + payload, fill);
  test::write_ipv4(p.data(), p.size(), {.src_be = src_be, .dst_be = dst_be, .proto = 17});
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
    session.confirmed.store(!server);  // a client's session starts proven; a server's waits for a packet
    group.inner_ipv4_be = server ? kClientIp : 0;
  }
  ~Side() {
    if (worker) worker->stop();
    close(tun_app);
    close(tun_worker);
    close(evfd);
  }
  void start(bool is_client) {
    publish(is_client);
    WorkerConfig c;
    c.id = 0;
    c.tun_fd = tun_worker;
    c.tun_vnet_hdr = vnet;
    c.uplink_fds = {udp.fd()};
    c.snapshots = &snaps;
    c.qsbr = &qsbr;
    c.to_control = &queue;
    c.handshakes_to_control = &handshakes;
    if (is_client) c.pending_handshakes = &pending;
    c.control_eventfd = evfd;
    worker = std::make_unique<Worker>(std::move(c));
    worker->start();
  }

  // The snapshot: this side's session, routed as the client's default or (server) by
  // the client's address; with a tunnel IPv6 /64 if given.
  void publish(bool is_client, const std::array<std::uint8_t, 8>* v6 = nullptr) {
    auto snap = std::make_unique<Snapshot>();
    snap->by_index.emplace(session.local_index, &session);
    std::array<Session*, kMaxUplinks> ups{};
    ups[0] = &session;
    auto route = make_route(&group, ups, {}, SchedulerConfig{}, ++version);
    if (is_client)
      snap->default_route = route.get();
    else
      snap->by_inner_ipv4.emplace(group.inner_ipv4_be, route.get());
    if (v6 != nullptr) {
      snap->has_ipv6 = true;
      snap->ipv6_prefix = *v6;
    }
    snap->routes.push_back(std::move(route));
    snaps.publish(std::move(snap));
  }

  // Reads one packet from the app end of the "TUN", waiting at most 2 s.
  std::vector<std::uint8_t> read_tun() {
    pollfd p{tun_app, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1) return {};
    std::vector<std::uint8_t> buf(70000);
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
  ControlQueue queue, handshakes;
  PendingHandshakes pending;
  Group group;
  Session session;
  io::UdpSocket udp;
  int tun_app = -1, tun_worker = -1, evfd = -1;
  bool vnet = false;  // the "TUN" carries virtio_net_hdrs (TUN offloads)
  std::unique_ptr<Worker> worker;
  std::uint64_t version = 0;
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
    client.session.set_peer(server.udp.local());
    server.session.set_peer(client.udp.local());
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

// A TCP super-packet as the kernel hands it to an offloaded TUN: behind its
// virtio_net_hdr (TSO, NEEDS_CSUM), the TCP checksum field holding the pseudo header's
// sum over the whole packet.
std::vector<std::uint8_t> tso_read(std::size_t payload, std::uint16_t mss) {
  const std::size_t len = 20 + 20 + payload;
  std::vector<std::uint8_t> p(kVnetHdrLen + len);
  VnetHdr h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kGsoTcp4;
  h.hdr_len = 40;
  h.gso_size = mss;
  h.csum_start = 20;
  h.csum_offset = 16;
  store_vnet_hdr(p.data(), h);
  std::uint8_t* ip = p.data() + kVnetHdrLen;
  test::write_ipv4(ip, len, {.src_be = kClientIp, .dst_be = kServerIp, .proto = 6, .df = true});
  std::uint8_t* tcp = ip + 20;
  tcp[0] = 0x9c, tcp[1] = 0x40, tcp[2] = 0x14, tcp[3] = 0x51;  // ports 40000 -> 5201
  tcp[7] = 1;                                                  // seq 1
  tcp[12] = 5 << 4;
  tcp[13] = 0x10;  // ACK
  tcp[14] = 0xff;
  for (std::size_t i = 0; i < payload; ++i) tcp[20 + i] = static_cast<std::uint8_t>(i * 31 + i / 7);
  // The pseudo header's sum: a NEEDS_CSUM packet's checksum completed from zero.
  std::vector<std::uint8_t> copy(ip, ip + len);
  GsoPlan plan;
  classify_tun_packet(VnetHdr{kVnetNeedsCsum, 0, 0, 0, 20, 16}, copy.data(), len, plan);  // full checksum
  const std::uint16_t full = static_cast<std::uint16_t>(copy[36] << 8 | copy[37]);
  const std::uint16_t body = csum_add(0, ip + 20, len - 20);  // field still zero
  // full = ~(pseudo + body): pseudo = ~full - body in ones' complement.
  std::uint32_t pseudo = static_cast<std::uint16_t>(~full) + static_cast<std::uint32_t>(static_cast<std::uint16_t>(~body));
  pseudo = (pseudo & 0xffff) + (pseudo >> 16);
  tcp[16] = static_cast<std::uint8_t>(pseudo >> 8);
  tcp[17] = static_cast<std::uint8_t>(pseudo);
  return p;
}

// What the kernel sees in a packet the worker wrote to an offloaded TUN: a NEEDS_CSUM
// checksum is completed as the kernel completes it; then the IPv4 and TCP checksums must
// verify. Returns the TCP payload.
std::vector<std::uint8_t> checked_payload(std::vector<std::uint8_t> p, bool vnet) {
  std::size_t off = 0;
  if (vnet) {
    EXPECT_GT(p.size(), kVnetHdrLen);
    const VnetHdr h = load_vnet_hdr(p.data());
    off = kVnetHdrLen;
    if (h.flags & kVnetNeedsCsum) {
      GsoPlan plan;
      EXPECT_EQ(classify_tun_packet(VnetHdr{kVnetNeedsCsum, 0, 0, 0, h.csum_start, h.csum_offset}, p.data() + off,
                                    p.size() - off, plan), TunPacket::Plain);
    }
  }
  const std::uint8_t* ip = p.data() + off;
  const std::size_t len = p.size() - off;
  EXPECT_GE(len, 40u);
  EXPECT_EQ(csum_add(0, ip, 20), 0xffff) << "IPv4 header checksum";
  EXPECT_EQ(l4_checksum(ip, 20, len, 6), static_cast<std::uint16_t>(ip[36] << 8 | ip[37])) << "TCP checksum";
  return {ip + 40, ip + len};
}

// Segments the client cuts from a super-packet travel with their checksums partial
// (kDataChecksumPartial). A server whose TUN has offloads hands them on behind
// NEEDS_CSUM, joined or alone; one without completes them: either way the kernel sees
// valid checksums and the payload whole.
void segments_arrive_checked(Side& client, Side& server) {
  const std::size_t payload = 3 * 1000 + 123;
  const auto read = tso_read(payload, 1000);
  ASSERT_EQ(write(client.tun_app, read.data(), read.size()), static_cast<ssize_t>(read.size()));
  std::vector<std::uint8_t> got;
  for (int i = 0; i < 8 && got.size() < payload; ++i) {
    const auto p = server.read_tun();
    ASSERT_FALSE(p.empty()) << "after " << got.size() << " bytes";
    const auto part = checked_payload(p, server.vnet);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_TRUE(std::equal(got.begin(), got.end(), read.begin() + kVnetHdrLen + 40, read.end()));
  EXPECT_EQ(got.size(), payload);
  EXPECT_EQ(client.worker->counters().get(Counter::TunGsoReads), 1u);
  EXPECT_EQ(client.worker->counters().get(Counter::TxPackets), 4u);
}

class OffloadedClientToPlainServer : public WorkerPair {
 protected:
  void SetUp() override {
    client.vnet = true;
    client.session.peer_takes_partial = true;
    WorkerPair::SetUp();
  }
};
class OffloadedClientToOffloadedServer : public WorkerPair {
 protected:
  void SetUp() override {
    client.vnet = server.vnet = true;
    client.session.peer_takes_partial = true;
    WorkerPair::SetUp();
  }
};
// A server that did not agree to partial checksums (one from before them would take
// every packet as whole and write it without a NEEDS_CSUM header): the client completes
// each segment's checksum before sealing it.
class OffloadedClientToServerWithoutPartial : public WorkerPair {
 protected:
  void SetUp() override {
    client.vnet = true;
    WorkerPair::SetUp();
  }
};

TEST_F(OffloadedClientToPlainServer, PartialChecksumsAreCompleted) { segments_arrive_checked(client, server); }
TEST_F(OffloadedClientToOffloadedServer, PartialChecksumsGoToTheKernelAsNeedsCsum) {
  segments_arrive_checked(client, server);
}
TEST_F(OffloadedClientToServerWithoutPartial, ChecksumsAreCompletedBeforeSealing) {
  server.worker->stop();  // the datagrams are read and opened here instead
  server.worker.reset();
  const int off = 0;
  setsockopt(server.udp.fd(), SOL_UDP, UDP_GRO, &off, sizeof off);
  const std::size_t payload = 3 * 1000 + 123;
  const auto read = tso_read(payload, 1000);
  ASSERT_EQ(write(client.tun_app, read.data(), read.size()), static_cast<ssize_t>(read.size()));
  std::vector<std::uint8_t> got;
  for (int i = 0; i < 4; ++i) {
    pollfd p{server.udp.fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 2000), 1) << "datagram " << i;
    std::vector<std::uint8_t> d(4096);
    const ssize_t n = recv(server.udp.fd(), d.data(), d.size(), 0);
    ASSERT_GT(n, static_cast<ssize_t>(kHeaderLen + kSeqLen + kTagLen));
    d.resize(static_cast<std::size_t>(n));
    Header h;
    ASSERT_EQ(decode_header(d, h), HeaderError::Ok);
    EXPECT_EQ(h.aux, 0) << "no CHECKSUM_PARTIAL to a peer that did not agree to it";
    ASSERT_TRUE(server.session.rx_key.open(h.counter, {d.data(), kHeaderLen}, d.data() + kHeaderLen,
                                           d.size() - kHeaderLen));
    std::vector<std::uint8_t> inner(d.begin() + kHeaderLen + kSeqLen, d.end() - kTagLen);
    const auto part = checked_payload(inner, false);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_TRUE(std::equal(got.begin(), got.end(), read.begin() + kVnetHdrLen + 40, read.end()));
  EXPECT_EQ(got.size(), payload);
}

// A packet whose seal failed is counted and not sent (sent, its wiped bytes would fail
// the peer's tag check); the next one goes through.
TEST_F(WorkerPair, APacketWhoseSealFailedIsCountedNotSent) {
  crypto::set_aead_backend(crypto::AeadBackend::OpenSsl);
  crypto::inject_seal_failures(1);
  const auto up = ipv4_udp(kClientIp, kServerIp, 300, 7);
  ASSERT_EQ(write(client.tun_app, up.data(), up.size()), static_cast<ssize_t>(up.size()));
  EXPECT_EQ(client.wait_counter(Counter::DropSealFailed, 1), 1u);
  ASSERT_EQ(write(client.tun_app, up.data(), up.size()), static_cast<ssize_t>(up.size()));
  EXPECT_EQ(server.read_tun(), up);
  crypto::inject_seal_failures(0);
  crypto::set_aead_backend(crypto::AeadBackend::Sodium);
  EXPECT_EQ(server.worker->counters().get(Counter::RxPackets), 1u);
  EXPECT_EQ(server.worker->counters().get(Counter::DropAuth), 0u);
  EXPECT_EQ(client.worker->counters().get(Counter::TxPackets), 1u);
}

// Workers that go idle keep no session key in OpenSSL's per-thread contexts.
TEST_F(WorkerPair, IdleWorkersHoldNoKeyInOpenSslContexts) {
  crypto::set_aead_backend(crypto::AeadBackend::OpenSsl);
  const auto up = ipv4_udp(kClientIp, kServerIp, 300, 7);
  ASSERT_EQ(write(client.tun_app, up.data(), up.size()), static_cast<ssize_t>(up.size()));
  EXPECT_EQ(server.read_tun(), up);
  crypto::set_aead_backend(crypto::AeadBackend::Sodium);
  for (int i = 0; i < 200 && crypto::contexts_holding_keys() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(crypto::contexts_holding_keys(), 0u);
  EXPECT_EQ(server.worker->counters().get(Counter::RxPackets), 1u);
}

// A client's workers hand on only the handshake and Error datagrams addressed to a
// handshake in progress, into a queue of their own: a stranger's cannot fill the queue
// that carries the sessions' Pongs and Closes.
TEST_F(WorkerPair, StrangersCannotCrowdOutAClientsSessionMessages) {
  io::UdpSocket raw = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
  const io::Endpoint to = client.udp.local();
  auto error_to = [&](std::uint32_t receiver) {
    Header h;
    h.type = PacketType::Error;
    h.aux = 1;
    h.receiver = receiver;
    std::uint8_t b[kHeaderLen];
    encode_header(h, b);
    return std::vector<std::uint8_t>(b, b + kHeaderLen);
  };
  client.pending.index[0].store(0x1234, std::memory_order_relaxed);
  constexpr int kFlood = 300, kRound = 50;  // more than a queue holds, in rounds the socket buffer takes
  const auto stray = error_to(0x9999);
  for (int r = 1; r <= kFlood / kRound; ++r) {
    for (int i = 0; i < kRound; ++i) ASSERT_TRUE(raw.send_to(stray.data(), stray.size(), to));
    ASSERT_EQ(client.wait_counter(Counter::DropStrayHandshake, r * kRound), static_cast<std::uint64_t>(r * kRound));
  }
  ControlMessage m;
  EXPECT_FALSE(client.handshakes.pop(m)) << "nothing of a stranger's reached the control thread";
  EXPECT_EQ(client.worker->counters().get(Counter::HandshakePackets), 0u);

  // Addressed to the handshake in progress: they fill their own queue, and only it.
  const auto expected = error_to(0x1234);
  auto handed = [&] {
    return client.worker->counters().get(Counter::HandshakePackets) + client.worker->counters().get(Counter::DropQueueFull);
  };
  for (int r = 1; r <= kFlood / kRound; ++r) {
    for (int i = 0; i < kRound; ++i) ASSERT_TRUE(raw.send_to(expected.data(), expected.size(), to));
    for (int i = 0; i < 200 && handed() < static_cast<std::uint64_t>(r * kRound); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(client.worker->counters().get(Counter::HandshakePackets), 256u);
  EXPECT_EQ(client.worker->counters().get(Counter::DropQueueFull), static_cast<std::uint64_t>(kFlood - 256));
  // A session's Close still gets through.
  std::uint8_t close[kHeaderLen + kTagLen];
  const std::size_t n = seal_transport(server.session, 3, PacketType::Close, close, 0);
  ASSERT_GT(n, 0u);
  ASSERT_TRUE(raw.send_to(close, n, to));
  bool got_close = false;
  for (int i = 0; i < 200 && !got_close; ++i) {
    while (client.queue.pop(m)) got_close |= m.kind == ControlMessage::Kind::Close;
    if (!got_close) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(got_close) << "the Close was crowded out";
  int queued = 0;
  while (client.handshakes.pop(m)) queued += m.kind == ControlMessage::Kind::Packet;
  EXPECT_EQ(queued, 256);
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
  ASSERT_TRUE(server.handshakes.pop(m));
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
  EXPECT_TRUE(client.session.tx_key.seal(h.counter, {pkt, kHeaderLen}, pkt + kHeaderLen, 8));
  client.session.last_rx_ns.store(0);
  ASSERT_TRUE(client.udp.send_to(pkt, sizeof pkt, server.udp.local()));
  for (int i = 0; i < 200 && client.session.last_rx_ns.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(client.session.last_rx_ns.load(), 0);  // the Pong came back and verified
  EXPECT_EQ(client.worker->counters().get(Counter::DropAuth), 0u);
  EXPECT_EQ(client.worker->counters().get(Counter::DropUnexpected), 0u);
}

// The Pong tells the pinging side what its path delivered: the packets received on the
// session and those sent up to the last one received, by counter, per sender. Counters
// 0-4 of the pinging sender never arrive: five packets lost. Then the answer's time.
TEST_F(WorkerPair, PongCarriesThePathsPacketCounts) {
  ASSERT_EQ(server.session.rx_senders.load() >> kControlSender & 1, 0u);
  const std::uint64_t received = server.session.rx_packets.load();
  const std::uint64_t expected = rx_expected(server.session);
  std::uint8_t pkt[kHeaderLen + 8 + kTagLen] = {};
  Header h;
  h.type = PacketType::Ping;
  h.flags = flag::kEncrypted;
  h.receiver = client.session.remote_index;
  h.counter = std::uint64_t{kControlSender} << kSenderShift | 5;
  encode_header(h, pkt);
  store_le64(pkt + kHeaderLen, 0x0102030405060708ull);
  ASSERT_TRUE(client.session.tx_key.seal(h.counter, {pkt, kHeaderLen}, pkt + kHeaderLen, 8));
  ASSERT_TRUE(client.udp.send_to(pkt, sizeof pkt, server.udp.local()));
  ControlMessage m;
  bool got = false;
  for (int i = 0; i < 200 && !got; ++i) {
    while (!got && client.queue.pop(m)) got = m.kind == ControlMessage::Kind::Pong;
    if (!got) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(got);
  ASSERT_EQ(m.len, 40u);
  EXPECT_EQ(load_le64(m.data.data()), 0x0102030405060708ull);
  EXPECT_EQ(load_le64(m.data.data() + 16), received + 1);
  EXPECT_EQ(load_le64(m.data.data() + 24), expected + 6);
  // The server's clock as it answered (the same machine's monotonic clock here).
  const auto answered = static_cast<std::int64_t>(load_le64(m.data.data() + 32));
  EXPECT_GT(answered, 0);
  EXPECT_LE(answered, io::monotonic_ns());
}

TEST_F(WorkerPair, ServerDropsPacketsForUnknownClients) {
  const auto down = ipv4_udp(kServerIp, 0x0755000a, 10, 1);  // 10.0.85.7: no session
  ASSERT_GT(write(server.tun_app, down.data(), down.size()), 0);
  EXPECT_EQ(server.wait_counter(Counter::DropNoRoute, 1), 1u);
}

// IPv6 in the tunnel: the server delivers a client's packet from prefix::its IPv4
// address, routes packets to that address back to it, and drops any other IPv6 source;
// the kernel's multicast chatter never leaves the TUN.
std::vector<std::uint8_t> ipv6_udp(const std::array<std::uint8_t, 8>& prefix, std::uint32_t src_v4,
                                   const std::uint8_t* dst, std::size_t payload) {
  std::vector<std::uint8_t> p(48 + payload, 0x5a);
  p[0] = 0x60;
  p[1] = p[2] = p[3] = 0;
  p[4] = static_cast<std::uint8_t>((8 + payload) >> 8);
  p[5] = static_cast<std::uint8_t>(8 + payload);
  p[6] = 17;
  p[7] = 64;
  std::memset(&p[8], 0, 16);
  std::memcpy(&p[8], prefix.data(), 8);
  std::memcpy(&p[20], &src_v4, 4);
  std::memcpy(&p[24], dst, 16);
  return p;
}

TEST_F(WorkerPair, Ipv6FromTheClientsOwnAddressOnly) {
  const std::array<std::uint8_t, 8> prefix = {0xfd, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0};
  server.publish(false, &prefix);
  std::uint8_t server6[16] = {};
  std::memcpy(server6, prefix.data(), 8);
  server6[15] = 1;
  const auto up = ipv6_udp(prefix, kClientIp, server6, 100);
  ASSERT_EQ(write(client.tun_app, up.data(), up.size()), static_cast<ssize_t>(up.size()));
  EXPECT_EQ(server.read_tun(), up);
  // The answer goes to prefix::10.0.85.2.
  std::uint8_t client6[16] = {};
  std::memcpy(client6, prefix.data(), 8);
  std::memcpy(client6 + 12, &kClientIp, 4);
  auto down = ipv6_udp(prefix, 0, client6, 50);
  std::memcpy(&down[8], server6, 16);
  ASSERT_EQ(write(server.tun_app, down.data(), down.size()), static_cast<ssize_t>(down.size()));
  EXPECT_EQ(client.read_tun(), down);
  // Another client's address in the prefix, and an address outside it: dropped.
  const auto other = ipv6_udp(prefix, 0x0955000a, server6, 10);
  ASSERT_GT(write(client.tun_app, other.data(), other.size()), 0);
  auto outside = ipv6_udp(prefix, kClientIp, server6, 10);
  outside[8] = 0xfc;
  ASSERT_GT(write(client.tun_app, outside.data(), outside.size()), 0);
  EXPECT_EQ(server.wait_counter(Counter::DropBadSource, 2), 2u);
  // A multicast listener report from the client's kernel stays on the client.
  std::uint8_t mcast[16] = {0xff, 0x02};
  mcast[15] = 0x16;
  const auto report = ipv6_udp(prefix, kClientIp, mcast, 20);
  ASSERT_GT(write(client.tun_app, report.data(), report.size()), 0);
  EXPECT_EQ(client.wait_counter(Counter::TunLocalIgnored, 1), 1u);
  EXPECT_EQ(client.worker->counters().get(Counter::DropNoRoute), 0u);
  EXPECT_EQ(server.worker->counters().get(Counter::RxPackets), 1u);
}

// Two workers of one server share a client whose two uplinks arrive at different
// workers (as SO_REUSEPORT may spread them): worker 0 reads socket A, worker 1 socket B,
// each with its own TUN queue. Every packet comes as a copy on each uplink (same
// sequence number, each sealed under its uplink's session), and uplink 0's datagram is
// replayed verbatim to the other worker as well. Each packet must reach the TUN exactly
// once; the copies are counted as duplicates and the replays as replays, across workers.
TEST(TwoWorkers, ShareOneClientWithoutDoubleDelivery) {
  ASSERT_TRUE(crypto::init());
  constexpr unsigned kWorkers = 2;
  constexpr std::uint32_t kPackets = 3000;
  Qsbr qsbr(kWorkers);
  SnapshotHolder snaps(qsbr);
  Group group;
  group.inner_ipv4_be = kClientIp;
  Session srv[2], cli[2];  // per uplink: the server's session and the client's end of it
  for (unsigned u = 0; u < 2; ++u) {
    const crypto::KeyPair k = crypto::KeyPair::generate();
    srv[u].rx_key = crypto::TransportKey(crypto::SecretKey(k.priv.span()));
    cli[u].tx_key = crypto::TransportKey(crypto::SecretKey(k.priv.span()));
    srv[u].local_index = 10 + u;
    cli[u].remote_index = 10 + u;
    srv[u].uplink = cli[u].uplink = static_cast<std::uint8_t>(u);
    srv[u].group = &group;
  }
  auto snap = std::make_unique<Snapshot>();
  std::array<Session*, kMaxUplinks> ups{};
  for (unsigned u = 0; u < 2; ++u) {
    snap->by_index.emplace(srv[u].local_index, &srv[u]);
    ups[u] = &srv[u];
  }
  auto route = make_route(&group, ups, {}, SchedulerConfig{}, 1);
  snap->by_inner_ipv4.emplace(kClientIp, route.get());
  snap->routes.push_back(std::move(route));
  snaps.publish(std::move(snap));

  ControlQueue queues[kWorkers];
  io::UdpSocket socks[kWorkers];
  int tun_app[kWorkers], tun_worker[kWorkers];
  const int evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::unique_ptr<Worker> workers[kWorkers];
  for (unsigned w = 0; w < kWorkers; ++w) {
    int sp[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    tun_app[w] = sp[0];
    tun_worker[w] = sp[1];
    int on = 1;
    ioctl(tun_worker[w], FIONBIO, &on);
    socks[w] = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
    WorkerConfig c;
    c.id = w;
    c.tun_fd = tun_worker[w];
    c.uplink_fds = {socks[w].fd()};
    c.snapshots = &snaps;
    c.qsbr = &qsbr;
    c.to_control = &queues[w];
    c.control_eventfd = evfd;
    workers[w] = std::make_unique<Worker>(std::move(c));
    workers[w]->start();
  }
  io::UdpSocket client_sock = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
  const io::Endpoint to[kWorkers] = {socks[0].local(), socks[1].local()};

  std::vector<std::uint8_t> seen(kPackets, 0);
  std::uint32_t delivered = 0, twice = 0;
  auto drain = [&](int timeout_ms) {
    pollfd p[kWorkers] = {{tun_app[0], POLLIN, 0}, {tun_app[1], POLLIN, 0}};
    while (poll(p, kWorkers, timeout_ms) > 0) {
      for (unsigned w = 0; w < kWorkers; ++w) {
        if ((p[w].revents & POLLIN) == 0) continue;
        std::uint8_t buf[2048];
        const ssize_t n = read(tun_app[w], buf, sizeof buf);
        if (n < 28 + 4) continue;
        std::uint32_t id;
        std::memcpy(&id, buf + 28, 4);
        if (id >= kPackets) continue;
        twice += seen[id];
        seen[id] = 1;
        ++delivered;
      }
    }
  };
  for (std::uint32_t i = 0; i < kPackets; ++i) {
    auto inner = ipv4_udp(kClientIp, kServerIp, 64, 0);
    std::memcpy(inner.data() + 28, &i, 4);
    std::uint8_t dg[2][kHeaderLen + kSeqLen + 128 + kTagLen];
    std::size_t len[2];
    for (unsigned u = 0; u < 2; ++u) {
      store_le32(dg[u] + kHeaderLen, i);  // the session-wide sequence number both copies share
      std::memcpy(dg[u] + kHeaderLen + kSeqLen, inner.data(), inner.size());
      len[u] = seal_transport(cli[u], 0, PacketType::Data, dg[u], kSeqLen + inner.size());
      ASSERT_GT(len[u], 0u);
    }
    // The order varies: sometimes uplink 1's copy first, sometimes the replay first.
    const unsigned first = i % 3 == 0 ? 1 : 0;
    ASSERT_TRUE(client_sock.send_to(dg[first], len[first], to[first]));
    const bool replay_early = i % 5 == 0;
    if (replay_early) {
      ASSERT_TRUE(client_sock.send_to(dg[0], len[0], to[1]));  // replayed to worker 1
    }
    ASSERT_TRUE(client_sock.send_to(dg[1 - first], len[1 - first], to[1 - first]));
    if (!replay_early) {
      ASSERT_TRUE(client_sock.send_to(dg[0], len[0], to[1]));
    }
    if (i % 64 == 63) drain(0);
  }
  for (int i = 0; i < 100 && delivered < kPackets; ++i) drain(20);
  drain(50);
  auto sum = [&](Counter c) { return workers[0]->counters().get(c) + workers[1]->counters().get(c); };
  EXPECT_EQ(delivered, kPackets);
  EXPECT_EQ(twice, 0u);
  EXPECT_EQ(sum(Counter::RxPackets), kPackets);
  EXPECT_EQ(sum(Counter::DropDuplicate), kPackets);  // uplink 1's copies, or uplink 0's
  EXPECT_EQ(sum(Counter::DropReplay), kPackets);     // the verbatim replays
  EXPECT_GT(workers[0]->counters().get(Counter::RxPackets), 0u);  // both workers delivered
  EXPECT_GT(workers[1]->counters().get(Counter::RxPackets), 0u);
  for (auto& w : workers) w->stop();
  for (unsigned w = 0; w < kWorkers; ++w) {
    close(tun_app[w]);
    close(tun_worker[w]);
  }
  close(evfd);
}

}  // namespace
}  // namespace triglav::dp
