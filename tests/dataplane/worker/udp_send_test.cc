#include "dataplane/worker/udp_send.h"

#include <arpa/inet.h>
#include <netinet/udp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace triglav::dp {
namespace {

// Records each sendmsg as the kernel would see it: the segment size (0: none) and the
// datagrams' lengths.
struct Sent {
  std::uint16_t batch;
  int fd;
  io::Endpoint to;
  unsigned segment;
  std::vector<std::size_t> lens;
};

class FakeSink : public SendSink {
 public:
  void sendmsg(std::uint16_t batch, int fd, const msghdr* msg) noexcept override {
    Sent s{batch, fd, io::Endpoint::from_sockaddr(static_cast<const sockaddr*>(msg->msg_name), msg->msg_namelen), 0, {}};
    for (std::size_t i = 0; i < msg->msg_iovlen; ++i) s.lens.push_back(msg->msg_iov[i].iov_len);
    if (msg->msg_controllen > 0) {
      const cmsghdr* cm = CMSG_FIRSTHDR(msg);
      if (cm != nullptr && cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_SEGMENT) {
        std::uint16_t seg = 0;
        std::memcpy(&seg, CMSG_DATA(cm), sizeof seg);
        s.segment = seg;
      }
    }
    sent.push_back(s);
  }
  std::vector<Sent> sent;
};

class UdpSendTest : public ::testing::Test {
 protected:
  void make(bool gso) { sender = std::make_unique<UdpSender>(kSlots, gso, sink, counters); }
  // Adds a datagram of len bytes in the next slot.
  void add(std::size_t len, const io::Endpoint& to, int fd = 3) {
    sender->add(fd, to, mem.data() + next_slot * 2048, len, static_cast<std::uint16_t>(next_slot));
    ++next_slot;
  }
  // Completes every recorded send with res (or each with its bytes) and returns the slots given back.
  std::vector<std::uint16_t> complete_all(int res = 0) {
    std::vector<std::uint16_t> freed;
    std::vector<Sent> done;
    done.swap(sink.sent);
    for (const Sent& s : done) sender->completed(s.batch, res, freed);
    return freed;
  }

  static constexpr unsigned kSlots = 512;
  const io::Endpoint a = io::Endpoint::from_ipv4(htonl(0x0a000001), 7443);
  const io::Endpoint b = io::Endpoint::from_ipv4(htonl(0x0a000002), 7443);
  std::vector<std::uint8_t> mem = std::vector<std::uint8_t>(kSlots * 2048);
  unsigned next_slot = 0;
  FakeSink sink;
  Counters counters;
  std::unique_ptr<UdpSender> sender;
};

TEST_F(UdpSendTest, DatagramsOfOneSizeToOnePeerLeaveAsOneSegmentedSend) {
  make(true);
  for (int i = 0; i < 10; ++i) add(1400, a);
  EXPECT_TRUE(sink.sent.empty());  // open until the end of the loop turn
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 1u);
  EXPECT_EQ(sink.sent[0].segment, 1400u);
  EXPECT_EQ(sink.sent[0].lens, std::vector<std::size_t>(10, 1400));
  EXPECT_EQ(sink.sent[0].to, a);
  EXPECT_EQ(counters.get(Counter::TxGsoSends), 1u);
  EXPECT_EQ(complete_all(14000).size(), 10u);
  EXPECT_EQ(counters.get(Counter::UdpSendErrors), 0u);
}

TEST_F(UdpSendTest, AShorterDatagramEndsABatchAndOrderIsKept) {
  make(true);
  add(1400, a);
  add(1400, a);
  add(600, a);   // ends the batch: the kernel sends it last, shorter
  add(1400, a);  // a new batch, submitted only after the first
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 2u);
  EXPECT_EQ(sink.sent[0].lens, (std::vector<std::size_t>{1400, 1400, 600}));
  EXPECT_EQ(sink.sent[1].lens, (std::vector<std::size_t>{1400}));
  EXPECT_EQ(sink.sent[1].segment, 0u);  // one datagram: no segmentation asked for
  EXPECT_EQ(complete_all().size(), 4u);
}

TEST_F(UdpSendTest, ALongerDatagramSubmitsTheOpenBatchFirst) {
  make(true);
  add(600, a);
  add(1400, a);
  ASSERT_EQ(sink.sent.size(), 1u);  // the 600-byte batch could not take it: sent at once
  EXPECT_EQ(sink.sent[0].lens, (std::vector<std::size_t>{600}));
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 2u);
  EXPECT_EQ(sink.sent[1].lens, (std::vector<std::size_t>{1400}));
}

TEST_F(UdpSendTest, PeersAndSocketsHaveTheirOwnBatches) {
  make(true);
  add(1000, a);
  add(1000, b);
  add(1000, a, 4);  // same peer through another socket
  add(1000, a);
  add(1000, b);
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 3u);
  unsigned to_a3 = 0, to_b3 = 0, to_a4 = 0;
  for (const Sent& s : sink.sent) {
    if (s.fd == 3 && s.to == a) to_a3 += static_cast<unsigned>(s.lens.size());
    if (s.fd == 3 && s.to == b) to_b3 += static_cast<unsigned>(s.lens.size());
    if (s.fd == 4 && s.to == a) to_a4 += static_cast<unsigned>(s.lens.size());
  }
  EXPECT_EQ(to_a3, 2u);
  EXPECT_EQ(to_b3, 2u);
  EXPECT_EQ(to_a4, 1u);
}

TEST_F(UdpSendTest, ABatchHoldsAtMost64DatagramsAnd65000Bytes) {
  make(true);
  for (int i = 0; i < 100; ++i) add(500, a);  // 64 of 500 bytes fit both limits
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 2u);
  EXPECT_EQ(sink.sent[0].lens.size(), UdpSender::kMaxSegments);
  EXPECT_EQ(sink.sent[1].lens.size(), 36u);
  complete_all();
  for (int i = 0; i < 50; ++i) add(1400, a);  // 46 x 1400 = 64,400 bytes; a 47th would pass 65,000
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 2u);
  EXPECT_EQ(sink.sent[0].lens.size(), 46u);
  EXPECT_EQ(sink.sent[1].lens.size(), 4u);
}

TEST_F(UdpSendTest, WithoutGsoEveryDatagramIsItsOwnSend) {
  make(false);
  for (int i = 0; i < 5; ++i) add(1400, a);
  EXPECT_EQ(sink.sent.size(), 5u);  // submitted at once
  for (const Sent& s : sink.sent) {
    EXPECT_EQ(s.lens.size(), 1u);
    EXPECT_EQ(s.segment, 0u);
  }
  EXPECT_EQ(counters.get(Counter::TxGsoSends), 0u);
}

TEST_F(UdpSendTest, RefusedSegmentationResendsOneByOneAndStopsAskingForIt) {
  make(true);
  for (int i = 0; i < 8; ++i) add(1400, a);
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 1u);
  std::vector<std::uint16_t> freed;
  std::vector<Sent> first;
  first.swap(sink.sent);
  sender->completed(first[0].batch, -EIO, freed);
  EXPECT_TRUE(freed.empty());  // the slots are still in flight, one send each
  ASSERT_EQ(sink.sent.size(), 8u);
  for (const Sent& s : sink.sent) EXPECT_EQ(s.lens, (std::vector<std::size_t>{1400}));
  EXPECT_FALSE(sender->gso());
  EXPECT_EQ(complete_all().size(), 8u);
  EXPECT_EQ(counters.get(Counter::UdpSendErrors), 0u);
  for (int i = 0; i < 4; ++i) add(1400, a);
  EXPECT_EQ(sink.sent.size(), 4u);  // from now on, alone
}

TEST_F(UdpSendTest, RefusedJumboSegmentsStillLeaveSmallOnesBatched) {
  make(true);
  for (int i = 0; i < 4; ++i) add(8000, a);  // a jumbo TUN MTU
  sender->flush();
  std::vector<std::uint16_t> freed;
  std::vector<Sent> first;
  first.swap(sink.sent);
  ASSERT_EQ(first.size(), 1u);
  sender->completed(first[0].batch, -EMSGSIZE, freed);
  EXPECT_TRUE(sender->gso());
  EXPECT_FALSE(sender->jumbo_gso());
  EXPECT_EQ(complete_all().size(), 4u);
  add(8000, a);
  EXPECT_EQ(sink.sent.size(), 1u);  // a jumbo datagram goes alone now
  complete_all();
  for (int i = 0; i < 4; ++i) add(1400, a);
  sender->flush();
  ASSERT_EQ(sink.sent.size(), 1u);  // small ones still batch
  EXPECT_EQ(sink.sent[0].lens.size(), 4u);
}

TEST_F(UdpSendTest, AFailedSendCountsEachDatagramAndFreesItsSlots) {
  make(true);
  for (int i = 0; i < 6; ++i) add(1400, a);
  sender->flush();
  EXPECT_EQ(complete_all(-ENETUNREACH).size(), 6u);
  EXPECT_EQ(counters.get(Counter::UdpSendErrors), 6u);
  EXPECT_TRUE(sender->gso());  // not a refusal of segmentation
}

TEST_F(UdpSendTest, EverySlotComesBackExactlyOnce) {
  make(true);
  for (unsigned i = 0; i < kSlots; ++i) add(i % 3 == 0 ? 700 : 1400, i % 5 == 0 ? b : a);
  sender->flush();
  std::vector<std::uint16_t> freed = complete_all();
  ASSERT_EQ(freed.size(), kSlots);
  std::sort(freed.begin(), freed.end());
  for (unsigned i = 0; i < kSlots; ++i) EXPECT_EQ(freed[i], i);
}

}  // namespace
}  // namespace triglav::dp
