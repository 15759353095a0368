#include "dataplane/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "dataplane/wire.h"

namespace triglav::dp {
namespace {

TEST(Generator, WritesValidPacketsOneFlowPerStream) {
  Generator g{3, 0x0255000a, 0x0155000a, 1420};
  std::vector<std::uint8_t> buf(2048, 0xee);
  for (unsigned n = 0; n < 6; ++n) {
    std::fill(buf.begin(), buf.end(), 0xee);
    const std::size_t len = write_generated(buf.data(), buf.size(), g, n);
    ASSERT_EQ(len, 1420u);
    EXPECT_EQ(inner_packet_length(buf.data(), len), 1420u);
    std::uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += std::uint32_t{buf[i]} << 8 | buf[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    EXPECT_EQ(sum, 0xffffu) << "IPv4 header checksum";
    EXPECT_EQ(buf[9], 17);
    EXPECT_EQ(load_le32(buf.data() + 12), 0x0255000au);
    EXPECT_EQ((buf[20] << 8 | buf[21]), 40000 + static_cast<int>(n % 3)) << "stream by source port";
    EXPECT_EQ((buf[24] << 8 | buf[25]), 1400) << "UDP length";
    EXPECT_TRUE(std::all_of(buf.begin() + 28, buf.begin() + 1420, [](std::uint8_t b) { return b == 0; }));
  }
  g.len = 5000;  // larger than the room: clamped
  EXPECT_EQ(write_generated(buf.data(), 1500, g, 0), 1500u);
}

}  // namespace
}  // namespace triglav::dp
