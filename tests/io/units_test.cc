#include "io/units.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace triglav::io {
namespace {

constexpr std::int64_t kMs = 1'000'000;

TEST(Parsers, Units) {
  double r;
  EXPECT_TRUE(parse_rate("20mbit", r));
  EXPECT_DOUBLE_EQ(r, 20e6);
  EXPECT_TRUE(parse_rate("1.5Gbit", r));
  EXPECT_DOUBLE_EQ(r, 1.5e9);
  EXPECT_TRUE(parse_rate("0", r));
  EXPECT_FALSE(parse_rate("fast", r));
  EXPECT_FALSE(parse_rate("10mb", r));
  std::int64_t ns;
  EXPECT_TRUE(parse_duration("60ms", ns));
  EXPECT_EQ(ns, 60 * kMs);
  EXPECT_TRUE(parse_duration("1.5s", ns));
  EXPECT_EQ(ns, 1500 * kMs);
  EXPECT_TRUE(parse_duration("250us", ns));
  EXPECT_EQ(ns, 250'000);
  EXPECT_FALSE(parse_duration("12", ns));
  EXPECT_FALSE(parse_duration("-1s", ns));
  EXPECT_FALSE(parse_duration("1e300s", ns)) << "beyond 64-bit nanoseconds: refused, never converted";
  EXPECT_FALSE(parse_duration("300y", ns));
  double p;
  EXPECT_TRUE(parse_percent("2%", p));
  EXPECT_DOUBLE_EQ(p, 0.02);
  EXPECT_FALSE(parse_percent("2", p));
  EXPECT_FALSE(parse_percent("101%", p));
  std::size_t b;
  EXPECT_TRUE(parse_size("64kb", b));
  EXPECT_EQ(b, 65536u);
  EXPECT_FALSE(parse_size("1e30mb", b));
}

}  // namespace
}  // namespace triglav::io
