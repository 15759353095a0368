// The loss-repair store: what a worker keeps of the packets it striped, handed out once
// to whichever worker asks, never torn by a writer working at the same time.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "dataplane/repair.h"

namespace triglav::dp {
namespace {

std::vector<std::uint8_t> bytes_of(std::uint32_t seq, std::size_t len) {
  std::vector<std::uint8_t> v(len);
  for (std::size_t i = 0; i < len; ++i) v[i] = static_cast<std::uint8_t>(seq * 31 + i);
  return v;
}

TEST(RepairStore, KeptPacketIsHandedOutOnce) {
  RepairStore store(64, 1500);
  const auto pkt = bytes_of(5, 1337);
  store.put(1, 5, 77, true, pkt.data(), pkt.size(), 10);
  std::vector<std::uint8_t> out(1500);
  RepairStore::Found f;
  ASSERT_TRUE(store.take(1, 5, 20, out.data(), out.size(), f));
  EXPECT_EQ(f.flow_seq, 77u);
  EXPECT_EQ(f.len, 1337u);
  EXPECT_TRUE(f.partial);
  EXPECT_EQ(std::memcmp(out.data(), pkt.data(), pkt.size()), 0);
  EXPECT_FALSE(store.take(1, 5, 30, out.data(), out.size(), f));  // once
}

TEST(RepairStore, OnlyTheClientAndNumberItWasSentWith) {
  RepairStore store(64, 1500);
  const auto pkt = bytes_of(5, 100);
  store.put(1, 5, 0, false, pkt.data(), pkt.size(), 0);
  std::vector<std::uint8_t> out(1500);
  RepairStore::Found f;
  EXPECT_FALSE(store.take(2, 5, 0, out.data(), out.size(), f));  // another client
  EXPECT_FALSE(store.take(1, 6, 0, out.data(), out.size(), f));  // another number
  EXPECT_FALSE(store.take(1, 5, 0, out.data(), 99, f));          // no room for it
  EXPECT_TRUE(store.take(1, 5, 0, out.data(), out.size(), f));
}

TEST(RepairStore, OldOrOversizedPacketsAreNotSentAgain) {
  RepairStore store(64, 1500);
  const auto pkt = bytes_of(1, 1501);
  store.put(1, 1, 0, false, pkt.data(), pkt.size(), 0);  // bigger than it keeps
  store.put(1, 2, 0, false, pkt.data(), 1000, 0);
  std::vector<std::uint8_t> out(2000);
  RepairStore::Found f;
  EXPECT_FALSE(store.take(1, 1, 0, out.data(), out.size(), f));
  EXPECT_FALSE(store.take(1, 2, RepairStore::kMaxAgeNs + 1, out.data(), out.size(), f));
}

// About the last `entries` packets are kept; what is replaced is the older of a bucket's
// two, and a packet sent again under the same number (a new version) can be taken again.
TEST(RepairStore, RecentPacketsSurviveAndNewVersionsCount) {
  RepairStore store(4096, 64);
  for (std::uint32_t seq = 0; seq < 20000; ++seq) {
    const auto pkt = bytes_of(seq, 64);
    store.put(3, seq, seq, false, pkt.data(), pkt.size(), seq);
  }
  std::vector<std::uint8_t> out(64);
  RepairStore::Found f;
  int kept = 0;
  for (std::uint32_t seq = 20000 - 512; seq < 20000; ++seq) {
    if (!store.take(3, seq, 20000, out.data(), out.size(), f)) continue;
    ++kept;
    EXPECT_EQ(f.flow_seq, seq);
    EXPECT_EQ(out, bytes_of(seq, 64));
  }
  EXPECT_GE(kept, 500);  // of the last 512 (one bucket in eight of 4,096 may lose one)
  EXPECT_FALSE(store.take(3, 0, 20000, out.data(), out.size(), f));  // long replaced
  const auto again = bytes_of(1, 64);
  store.put(3, 19999, 5, false, again.data(), again.size(), 20001);
  ASSERT_TRUE(store.take(3, 19999, 20001, out.data(), out.size(), f));
  EXPECT_EQ(f.flow_seq, 5u);
}

// A writer replacing entries while readers take them: every packet handed out is whole
// (its bytes match its number), and none twice.
TEST(RepairStore, ConcurrentReadersNeverSeeATornPacket) {
  RepairStore store(256, 512);
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::atomic<std::uint32_t> written{0};
  std::atomic<int> taken{0}, torn{0};
  constexpr std::uint32_t kMost = 1'000'000;
  std::thread writer([&] {
    while (ready.load() < 2) std::this_thread::yield();  // both readers are running
    // 200,000 packets, and more (up to kMost) while the readers, on a busy machine, have
    // not yet taken one.
    for (std::uint32_t seq = 0; seq < kMost && (seq < 200000 || taken.load() == 0); ++seq) {
      const auto pkt = bytes_of(seq, 64 + seq % 448);
      store.put(9, seq, seq, false, pkt.data(), pkt.size(), seq);
      written.store(seq, std::memory_order_relaxed);
    }
    stop.store(true);
  });
  std::vector<std::thread> readers;
  std::vector<std::vector<std::uint8_t>> seen(2, std::vector<std::uint8_t>(kMost));
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      std::vector<std::uint8_t> out(512);
      RepairStore::Found f;
      ++ready;
      while (!stop.load()) {
        const std::uint32_t top = written.load(std::memory_order_relaxed);
        for (std::uint32_t seq = top > 64 ? top - 64 : 0; seq <= top; ++seq) {
          if (!store.take(9, seq, seq, out.data(), out.size(), f)) continue;
          ++taken;
          if (seen[r][seq] != 0) ++torn;  // the same one twice
          seen[r][seq] = 1;
          if (f.len != 64 + seq % 448 || f.flow_seq != seq ||
              std::memcmp(out.data(), bytes_of(seq, f.len).data(), f.len) != 0)
            ++torn;
        }
      }
    });
  }
  writer.join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0) << "torn or taken twice";
  EXPECT_GT(taken.load(), 0);
  for (std::size_t seq = 0; seq < seen[0].size(); ++seq) ASSERT_FALSE(seen[0][seq] && seen[1][seq]) << seq;
}

}  // namespace
}  // namespace triglav::dp
