#include "io/ring.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>
#include <vector>

#include "io/udp_socket.h"

namespace triglav::io {
namespace {

// A multishot receive on a loopback socket with 4 provided buffers: what a worker does.
struct RecvFixture : ::testing::Test {
  void SetUp() override {
    rx = UdpSocket::bind(Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
    tx = UdpSocket::bind(Endpoint::from_ipv4(htonl(INADDR_LOOPBACK), 0));
    msg.msg_namelen = sizeof(sockaddr_storage);
  }
  void arm() {
    io_uring_sqe* s = ring.sqe();
    io_uring_prep_recvmsg_multishot(s, rx.fd(), &msg, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = bufs.group();
    io_uring_sqe_set_data64(s, 1);
    io_uring_submit(ring.get());
  }
  void send(std::uint8_t tag) {
    std::uint8_t b[32];
    std::memset(b, tag, sizeof b);
    ASSERT_TRUE(tx.send_to(b, sizeof b, rx.local()));
  }
  // Waits (at most 1 s) for a completion: the buffer id it filled, or -errno.
  int next(bool& more) {
    __kernel_timespec ts{1, 0};
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe_timeout(ring.get(), &cqe, &ts) != 0) return -ETIME;
    more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    int r = cqe->res;
    if (r >= 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
      const int bid = static_cast<int>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      io_uring_recvmsg_out* out = io_uring_recvmsg_validate(bufs.buf(static_cast<std::uint16_t>(bid)), r, &msg);
      EXPECT_NE(out, nullptr);
      if (out != nullptr) {
        const auto* p = static_cast<std::uint8_t*>(io_uring_recvmsg_payload(out, &msg));
        payloads.push_back(p[0]);
      }
      r = bid;
    }
    io_uring_cqe_seen(ring.get(), cqe);
    return r;
  }

  Ring ring{64};
  BufRing bufs{ring, 0, 4, 256};
  UdpSocket rx, tx;
  msghdr msg{};
  std::vector<std::uint8_t> payloads;
};

TEST_F(RecvFixture, BuffersRunOutAndComeBackWhenRecycled) {
  arm();
  std::set<int> ids;
  bool more = false;
  for (std::uint8_t i = 0; i < 4; ++i) {
    send(i);
    const int bid = next(more);
    ASSERT_GE(bid, 0) << "datagram " << int{i};
    ids.insert(bid);
    EXPECT_LT(bid, 4);
  }
  EXPECT_EQ(ids.size(), 4u);  // each buffer once
  EXPECT_EQ(payloads, (std::vector<std::uint8_t>{0, 1, 2, 3}));
  // A fifth datagram finds no buffer: the multishot receive ends with ENOBUFS.
  send(4);
  EXPECT_EQ(next(more), -ENOBUFS);
  EXPECT_FALSE(more);
  // Giving two back (published by flush) lets a new receive take the waiting datagram.
  bufs.recycle(*ids.begin());
  bufs.recycle(*ids.rbegin());
  bufs.flush();
  arm();
  const int bid = next(more);
  ASSERT_GE(bid, 0);
  EXPECT_TRUE(bid == *ids.begin() || bid == *ids.rbegin()) << bid;
  EXPECT_EQ(payloads.back(), 4);
  EXPECT_EQ(bufs.buf_size(), 256u);
}

TEST(BufRing, RefusesSizesThatAreNotAPowerOfTwo) {
  Ring ring(8);
  EXPECT_THROW(BufRing(ring, 0, 3, 256), std::runtime_error);
  EXPECT_THROW(BufRing(ring, 0, 0, 256), std::runtime_error);
  EXPECT_THROW(BufRing(ring, 0, 65536, 256), std::runtime_error);
}

}  // namespace
}  // namespace triglav::io
