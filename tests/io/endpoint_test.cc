#include "io/endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace triglav::io {
namespace {

TEST(Endpoint, ParsesIpv4AndIpv6) {
  std::string err;
  auto a = parse_endpoint("10.1.2.3:7443", err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->port(), 7443);
  EXPECT_EQ(a->to_string(), "10.1.2.3:7443");
  auto b = parse_endpoint("[2001:db8::1]:443", err);
  ASSERT_TRUE(b) << err;
  EXPECT_EQ(b->family(), AF_INET6);
  EXPECT_EQ(b->to_string(), "[2001:db8::1]:443");
  EXPECT_TRUE(parse_endpoint("0.0.0.0:1", err)->is_unspecified());
  EXPECT_FALSE(a->is_unspecified());
  EXPECT_TRUE(*a == *parse_endpoint("10.1.2.3:7443", err));
  EXPECT_FALSE(*a == *parse_endpoint("10.1.2.3:7444", err));
}

TEST(Endpoint, Rejections) {
  const char* bad[] = {"",          "1.2.3.4",        "1.2.3.4:",      "1.2.3.4:0",
                       "1.2.3.4:65536", "1.2.3.4:x",  "300.1.1.1:7443", "host:7443",
                       "2001:db8::1:443", "[2001:db8::1]", "[nope]:1",  "[::1]443",
                       "1.2.3.4:12a"};
  for (const char* t : bad) {
    std::string err;
    EXPECT_FALSE(parse_endpoint(t, err)) << t;
    EXPECT_FALSE(err.empty()) << t;
  }
}

TEST(Ipv4Prefix, ParseAndNetwork) {
  std::string err;
  auto p = parse_ipv4_prefix("10.0.85.2", 24, err);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->len, 24);
  EXPECT_EQ(p->to_string(), "10.0.85.2/24");
  EXPECT_EQ(ipv4_to_string(p->network_be()), "10.0.85.0");
  p = parse_ipv4_prefix("192.168.7.9/0", 24, err);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->network_be(), 0u);
  for (const char* t : {"abc", "10.0.0.1/33", "10.0.0.1/-1", "10.0.0.1/", "10.0.0/8", "/8"}) {
    EXPECT_FALSE(parse_ipv4_prefix(t, 24, err)) << t;
  }
}

TEST(Ipv6Prefix, ParseClearsHostBitsAndPrints) {
  std::string err;
  auto p = parse_ipv6_prefix("fd12:3456:789a:1:ffff::7/52", err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ(p->len, 52);
  EXPECT_EQ(p->to_string(), "fd12:3456:789a::/52");  // 0x0001 of the fourth group lies beyond bit 52
  auto host = parse_ipv6_prefix("2001:db8::1", err);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->to_string(), "2001:db8::1/128");
  EXPECT_EQ(parse_ipv6_prefix("::/0", err)->to_string(), "::/0");
  EXPECT_FALSE(parse_ipv6_prefix("fd00::/129", err));
  EXPECT_NE(err.find("invalid prefix length (0-128)"), std::string::npos) << err;
  EXPECT_FALSE(parse_ipv6_prefix("10.0.0.0/8", err));
  EXPECT_NE(err.find("is not an IPv6 address"), std::string::npos) << err;
  EXPECT_FALSE(parse_ipv6_prefix("fd00::/x", err));
}

// Per-source limits: every address of one IPv6 /64 is one source, whatever the port;
// IPv4 addresses are sources of their own, written plainly or IPv4-mapped.
TEST(SourceId, AnIpv6Slash64IsOneSourceAndIpv4AddressesStayWhole) {
  std::string err;
  auto key = [&](const char* text) { return source_id(*parse_endpoint(text, err)); };
  EXPECT_EQ(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:2:ffff:ffff:ffff:ffff]:2"));
  EXPECT_NE(key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"));
  EXPECT_EQ(key("192.0.2.1:1"), key("192.0.2.1:9"));
  EXPECT_NE(key("192.0.2.1:1"), key("192.0.2.2:1"));
  EXPECT_EQ(key("[::ffff:192.0.2.1]:5"), key("192.0.2.1:7")) << "a dual-stack socket's view of IPv4";
  EXPECT_NE(key("[::ffff:192.0.2.1]:5"), key("[::ffff:192.0.2.2]:5")) << "not all IPv4 in one /64";
  EXPECT_NE(key("0.0.0.0:1"), key("[::]:1"));
  EXPECT_NE(key("255.4.0.0:1"), key("[ff04::]:1"));  // a multicast prefix is no source, but still distinct
  EXPECT_EQ(key("[2001:db8:1:2::1]:1"), 0x20010db800010002ull);
}

}  // namespace
}  // namespace triglav::io
