#include "control/benchmark.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace triglav::ctl {
namespace {

std::string read_all(std::FILE* f) {
  std::rewind(f);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  return out;
}

BenchSample sample(double t, std::uint64_t sent, std::uint64_t delivered, std::uint64_t received, double cpu) {
  BenchSample s;
  s.t = t;
  s.sent = sent;
  s.delivered = delivered;
  s.received = received;
  s.cpu_s = cpu;
  UplinkStatus a, b;
  a.id = 0;
  a.name = "eth1";
  a.state = "healthy";
  a.srtt_ms = 2;
  a.tx_bytes = sent / 4;
  a.delivered_bytes = delivered / 4;
  a.rx_bytes = received / 4;
  b.id = 3;
  b.name = "wwan0";
  b.state = "degraded";
  b.srtt_ms = 40;
  b.tx_bytes = sent - sent / 4;
  b.delivered_bytes = delivered - delivered / 4;
  b.rx_bytes = received - received / 4;
  s.uplinks = {a, b};
  return s;
}

TEST(BenchReport, JsonRatesPerIntervalAndTotals) {
  BenchOptions o;
  o.json = true;
  o.upload = o.download = true;
  o.streams = 4;
  o.duration_s = 2;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  BenchReport r(o, out, nullptr);
  r.start(sample(0, 0, 0, 0, 0), "192.0.2.1:7443");
  r.interval(sample(1, 125'000'000, 100'000'000, 62'500'000, 0.5));  // 1 Gbit/s up, 0.5 down
  r.interval(sample(2, 250'000'000, 200'000'000, 125'000'000, 1.5));
  r.finish(sample(2, 250'000'000, 200'000'000, 125'000'000, 1.5), sample(3, 250'000'000, 240'000'000, 130'000'000, 1.6));
  const auto j = nlohmann::json::parse(read_all(out));
  std::fclose(out);
  EXPECT_EQ(j["direction"], "bidir");
  EXPECT_EQ(j["streams"], 4);
  ASSERT_EQ(j["intervals"].size(), 2u);
  const auto& i0 = j["intervals"][0];
  EXPECT_DOUBLE_EQ(i0["upload"]["sent_bps"].get<double>(), 1e9);
  EXPECT_DOUBLE_EQ(i0["upload"]["delivered_bps"].get<double>(), 8e8);
  EXPECT_FALSE(i0["upload"].contains("loss")) << "an interval's delivered count lags: no loss per interval";
  EXPECT_DOUBLE_EQ(i0["download"]["received_bps"].get<double>(), 5e8);
  EXPECT_DOUBLE_EQ(i0["cpu_percent"].get<double>(), 50);
  ASSERT_EQ(i0["uplinks"].size(), 2u);
  EXPECT_EQ(i0["uplinks"][1]["name"], "wwan0");
  EXPECT_DOUBLE_EQ(i0["uplinks"][1]["sent_bps"].get<double>(), 7.5e8);
  EXPECT_DOUBLE_EQ(j["intervals"][1]["cpu_percent"].get<double>(), 100);
  const auto& t = j["total"];
  EXPECT_DOUBLE_EQ(t["upload"]["sent_bps"].get<double>(), 1e9);
  // Delivered is what the server had counted once everything in flight arrived.
  EXPECT_EQ(t["upload"]["delivered_bytes"], 240'000'000u);
  EXPECT_NEAR(t["upload"]["loss"].get<double>(), 0.04, 1e-12);
  EXPECT_EQ(t["download"]["received_bytes"], 125'000'000u);
}

TEST(BenchReport, TextLinesNameRatesAndUplinks) {
  BenchOptions o;
  o.streams = 1;
  o.duration_s = 1;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  BenchReport r(o, out, nullptr);
  r.start(sample(0, 0, 0, 0, 0), "192.0.2.1:7443");
  r.interval(sample(1, 125'000'000, 125'000'000, 0, 0.25));
  r.finish(sample(1, 125'000'000, 125'000'000, 0, 0.25), sample(1.5, 125'000'000, 125'000'000, 0, 0.3));
  const std::string text = read_all(out);
  std::fclose(out);
  EXPECT_NE(text.find("benchmark to 192.0.2.1:7443: 1 stream, upload, 1 s, uplinks eth1, wwan0"), std::string::npos)
      << text;
  EXPECT_NE(text.find("0.0-1.0 s  up 1.00 Gbit/s (delivered 1.00 Gbit/s)"), std::string::npos) << text;
  EXPECT_NE(text.find("| eth1 250.0 Mbit/s 2.00 ms"), std::string::npos) << text;
  EXPECT_NE(text.find("wwan0 750.0 Mbit/s 40.00 ms 0.0 % degraded"), std::string::npos) << text;
  EXPECT_NE(text.find("upload: 1.00 Gbit/s sent, 1.00 Gbit/s delivered to the server (0.00 % lost)"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("download"), std::string::npos) << "no download figures for an upload";
}

}  // namespace
}  // namespace triglav::ctl
