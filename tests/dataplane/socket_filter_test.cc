#include "dataplane/socket_filter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dataplane/wire.h"
#include "io/udp_socket.h"

namespace triglav::dp {
namespace {

std::vector<std::uint8_t> packet(PacketType type, std::uint8_t aux, std::size_t len, std::uint8_t version = kProtocolVersion) {
  std::vector<std::uint8_t> p(len, 0x5a);
  if (len >= kHeaderLen) {
    Header h;
    h.type = type;
    h.aux = aux;
    h.flags = is_transport(type) ? flag::kEncrypted : 0;
    encode_header(h, p.data());
    p[0] = static_cast<std::uint8_t>(version << 4 | (p[0] & 0x0f));
  }
  return p;
}

// The real kernel runs the program on a loopback socket: each case is sent, then a marker
// the filter passes; what arrives before the marker passed the filter.
class SocketFilter : public ::testing::Test {
 protected:
  void SetUp() override {
    rx = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
    tx = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
    const auto prog = server_socket_filter();
    rx.attach_filter(prog);
  }
  bool passes(const std::vector<std::uint8_t>& p) {
    const auto marker = packet(PacketType::Data, 0, kHeaderLen + kTagLen + 1);
    EXPECT_TRUE(tx.send_to(p.data(), p.size(), rx.local()));
    EXPECT_TRUE(tx.send_to(marker.data(), marker.size(), rx.local()));
    bool got_case = false;
    for (int i = 0; i < 2; ++i) {
      pollfd pfd{rx.fd(), POLLIN, 0};
      if (poll(&pfd, 1, 1000) != 1) {
        ADD_FAILURE() << "the marker never arrived";
        return false;
      }
      std::uint8_t buf[9300];
      const ssize_t n = recv(rx.fd(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(marker.size()) && std::memcmp(buf, marker.data(), marker.size()) == 0)
        return got_case;  // no case equals the marker
      got_case = true;
    }
    return got_case;
  }
  io::UdpSocket rx, tx;
};

TEST_F(SocketFilter, TransportPacketsWithRoomForATagPass) {
  for (auto t : {PacketType::Data, PacketType::Ping, PacketType::Pong, PacketType::Close, PacketType::Control})
    EXPECT_TRUE(passes(packet(t, 0, 200))) << static_cast<int>(t);
  EXPECT_TRUE(passes(packet(PacketType::Data, 0, kHeaderLen + kTagLen)));
  EXPECT_FALSE(passes(packet(PacketType::Data, 0, kHeaderLen + kTagLen - 1)));
}

TEST_F(SocketFilter, OnlyWholeInitiationsAndProbesOfTheHandshakeTypePass) {
  EXPECT_TRUE(passes(packet(PacketType::Handshake, kHandshakeInit, kInitLen)));
  EXPECT_TRUE(passes(packet(PacketType::Handshake, kHandshakeInit, 2 * kInitLen)));  // GRO may join two
  EXPECT_FALSE(passes(packet(PacketType::Handshake, kHandshakeInit, kInitLen - 1)));
  EXPECT_FALSE(passes(packet(PacketType::Handshake, kHandshakeInit, kInitLen + 1)));
  EXPECT_TRUE(passes(packet(PacketType::Handshake, kHandshakeProbe, 1400)));
  EXPECT_FALSE(passes(packet(PacketType::Handshake, kHandshakeResponse, kResponseLen)));  // clients take those
  EXPECT_FALSE(passes(packet(PacketType::Handshake, kHandshakeCookie, kCookieReplyLen)));
  EXPECT_FALSE(passes(packet(PacketType::Error, 0, kErrorLen)));
}

TEST_F(SocketFilter, JunkIsDroppedAndCountedByTheKernel) {
  const std::uint64_t before = rx.kernel_drops();
  EXPECT_FALSE(passes(packet(PacketType::Data, 0, 200, 2)));  // another version
  EXPECT_FALSE(passes(std::vector<std::uint8_t>(5, 0x10)));   // shorter than a header
  EXPECT_FALSE(passes(std::vector<std::uint8_t>(300, 0xff)));
  std::vector<std::uint8_t> type0 = packet(PacketType::Data, 0, 200);
  type0[0] &= 0xf0;  // type 0
  EXPECT_FALSE(passes(type0));
  EXPECT_GE(rx.kernel_drops() - before, 4u);
}

// The steering program on a real SO_REUSEPORT group of three loopback sockets: a
// transport packet reaches socket (index low byte) mod 3 whatever its source port and
// sender id; handshakes are left to the kernel's hash of the source.
TEST(Steering, TransportPacketsReachTheWorkerOfTheirIndex) {
  constexpr unsigned kWorkers = 3;
  auto group = io::UdpSocket::bind_group(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0), kWorkers);
  ASSERT_EQ(group.size(), kWorkers);
  group.front().attach_reuseport_program(steering_program(kWorkers));
  const io::Endpoint to = group.front().local();
  // The socket that receives p, sent from a fresh source port.
  auto receiver = [&](const std::vector<std::uint8_t>& p) -> int {
    io::UdpSocket from = io::UdpSocket::bind(io::Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
    EXPECT_TRUE(from.send_to(p.data(), p.size(), to));
    std::vector<pollfd> pfd;
    for (auto& s : group) pfd.push_back({s.fd(), POLLIN, 0});
    if (poll(pfd.data(), pfd.size(), 1000) != 1) return -1;
    for (unsigned i = 0; i < kWorkers; ++i)
      if (pfd[i].revents & POLLIN) {
        std::uint8_t buf[2048];
        (void)recv(group[i].fd(), buf, sizeof buf, MSG_DONTWAIT);
        return static_cast<int>(i);
      }
    return -1;
  };
  for (std::uint32_t index : {0x12345600u, 0x00000001u, 0xabcdef02u})
    for (unsigned sender = 0; sender < 5; ++sender)
      for (int source = 0; source < 3; ++source) {
        auto p = packet(PacketType::Data, 0, 100);
        Header h;
        h.type = PacketType::Data;
        h.receiver = index;
        h.counter = std::uint64_t{sender} << kSenderShift | 7;
        encode_header(h, p.data());
        EXPECT_EQ(receiver(p), static_cast<int>(steered_worker(index, kWorkers)))
            << "index " << index << " sender " << sender;
      }
  // Handshakes spread by source: some land beyond socket 0.
  bool beyond_first = false;
  for (int i = 0; i < 24 && !beyond_first; ++i)
    beyond_first = receiver(packet(PacketType::Handshake, kHandshakeInit, kInitLen)) > 0;
  EXPECT_TRUE(beyond_first);
}

}  // namespace
}  // namespace triglav::dp
