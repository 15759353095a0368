// triglav-flood: hostile traffic at a triglav server's UDP port, for measuring what a
// flood costs the tunnels it serves (tests/integration/test_flood.py).
//
//   garbage  random datagrams of random length (0-1400 bytes); a third of them start
//            with a valid header (Data to unknown indexes, bad handshakes)
//   init     initiations with a valid mac1 (from --authkey) and a random Noise
//            message: each passes the workers' cheap check and reaches the control
//            thread, which must answer with cookies rather than DH once under load
//
// Sends in batches with sendmmsg at --rate datagrams per second (0: as fast as it can)
// for --duration seconds, then prints "sent N datagrams in S s (R per second)".
#include <CLI/CLI.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/handshake_guard.h"
#include "crypto/aead.h"
#include "crypto/authkey.h"
#include "dataplane/wire.h"
#include "io/endpoint.h"

namespace {

using namespace triglav;
constexpr unsigned kBatch = 64;

struct Datagram {
  std::vector<std::uint8_t> bytes;
};

void fill_garbage(std::mt19937_64& rng, std::vector<std::uint8_t>& b) {
  const std::size_t len = rng() % 1401;
  b.resize(len);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  if (len >= dp::kHeaderLen && rng() % 3 == 0) {  // a well-formed header on random content
    dp::Header h;
    h.type = rng() % 2 ? dp::PacketType::Data : dp::PacketType::Handshake;
    h.aux = h.type == dp::PacketType::Handshake ? dp::kHandshakeInit : 0;
    h.receiver = static_cast<std::uint32_t>(rng());
    h.counter = rng() & dp::kCounterMask;
    dp::encode_header(h, b.data());
  }
}

void fill_init(std::mt19937_64& rng, std::vector<std::uint8_t>& b, const crypto::Key32& mac1_key) {
  b.resize(dp::kInitLen);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  dp::Header h;
  h.type = dp::PacketType::Handshake;
  h.aux = dp::kHandshakeInit;
  h.uplink = 0;
  h.receiver = 0;
  h.counter = static_cast<std::uint32_t>(rng()) | 1;
  dp::encode_header(h, b.data());
  dp::stamp_initiation(std::span<std::uint8_t, dp::kInitLen>(b.data(), dp::kInitLen), mac1_key, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("triglav-flood: hostile traffic at a triglav server (for tests and measurements)");
  std::string to_text, kind = "garbage", authkey;
  double rate = 0, duration = 5;
  std::uint64_t seed = 1;
  app.add_option("--to", to_text, "the server's IP:PORT")->required();
  app.add_option("--kind", kind, "garbage or init")->check(CLI::IsMember({"garbage", "init"}))->capture_default_str();
  app.add_option("--authkey", authkey, "the server's AuthKey (init: to compute mac1)");
  app.add_option("--rate", rate, "datagrams per second (0: as fast as possible)")->check(CLI::NonNegativeNumber);
  app.add_option("--duration", duration, "seconds")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  app.add_option("--seed", seed, "random seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!crypto::init()) {
    std::fprintf(stderr, "triglav-flood: libsodium failed to initialise\n");
    return 1;
  }
  std::string err;
  auto to = io::parse_endpoint(to_text, err);
  if (!to) {
    std::fprintf(stderr, "triglav-flood: --to: %s\n", err.c_str());
    return 1;
  }
  crypto::Key32 mac1_key{};
  if (kind == "init") {
    crypto::AuthKey ak;
    if (authkey.empty() || !crypto::decode_authkey(authkey, ak, err)) {
      std::fprintf(stderr, "triglav-flood: --kind init needs --authkey: %s\n", err.c_str());
      return 1;
    }
    mac1_key = dp::HandshakeMacKeys::for_server(ak.server_key).mac1;
  }
  const int fd = socket(to->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("triglav-flood: socket");
    return 1;
  }
  std::mt19937_64 rng(seed);
  std::vector<Datagram> pool(4096);
  for (auto& d : pool) {
    if (kind == "init") fill_init(rng, d.bytes, mac1_key);
    else fill_garbage(rng, d.bytes);
  }
  std::vector<mmsghdr> msgs(kBatch);
  std::vector<iovec> iov(kBatch);
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(duration);
  std::uint64_t sent = 0;
  std::size_t next = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (unsigned i = 0; i < kBatch; ++i) {
      Datagram& d = pool[next++ % pool.size()];
      iov[i] = {d.bytes.data(), d.bytes.size()};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&to->addr);
      msgs[i].msg_hdr.msg_namelen = to->len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = sendmmsg(fd, msgs.data(), kBatch, 0);
    if (n > 0) sent += static_cast<std::uint64_t>(n);
    if (rate > 0) {  // pace: be no further ahead than the rate allows
      const auto due = start + std::chrono::duration<double>(static_cast<double>(sent) / rate);
      std::this_thread::sleep_until(due);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("sent %llu datagrams in %.2f s (%.0f per second)\n", static_cast<unsigned long long>(sent), secs,
              static_cast<double>(sent) / secs);
  close(fd);
  return 0;
}
