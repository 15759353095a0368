// triglav-loadgen: many virtual clients against one triglav server, speaking the real
// protocol, to measure what a concentrator does with thousands of them
// (docs/PERFORMANCE.md, "A concentrator under load").
//
// Each virtual client has a random client id and --uplinks uplinks; each uplink runs its
// own Noise NK handshake (with a cookie when the server is under load and replies with
// one), answers the server's Pings, probes the server with a Ping every --ping seconds,
// rekeys every --rekey seconds (a new handshake whose session replaces the old one, the
// old one kept for the packets in flight; the first rekey comes after 20-100 % of that,
// so that clients that joined together do not all rekey together), and with --data-pps sends that many Data
// packets a second (small UDP datagrams from its tunnel address to the server's). The
// uplinks send from --sources consecutive IPv4 addresses starting at --source (one UDP
// socket each, shared by the uplinks assigned to it; the server's answers are told
// apart by receiver index), which the caller adds to an interface; --garbage mixes in
// that many random datagrams a second.
//
// It prints a line a second to stderr and, at the end, one JSON object: handshakes
// started, completed and their latency (p50, p99), cookie replies and errors, the
// sessions held (an uplink is held when the server's last packet on it, a Pong most
// often, came within 3 s) and those lost
// (a session that went silent or was closed after it was up), and with --server-pid the
// server's resident memory and CPU time before the clients came and at the end.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/client.h"
#include "control/handshake.h"
#include "crypto/aead.h"
#include "crypto/authkey.h"
#include "dataplane/generator.h"
#include "dataplane/handshake_guard.h"
#include "dataplane/wire.h"
#include "io/clock.h"
#include "io/endpoint.h"

namespace {

using namespace triglav;
constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::int64_t kHandshakeRetryNs = kSecond;
constexpr std::int64_t kHeldNs = 3 * kSecond;   // a Pong this recent: the session is held
constexpr std::int64_t kLostNs = 6 * kSecond;   // an up session silent this long: lost
constexpr std::int64_t kPreviousNs = 5 * kSecond;  // a rekeyed-away session still decrypts

struct Options {
  std::string authkey, server, source = "";
  unsigned clients = 100, uplinks = 2, sources = 1;
  double duration_s = 10, rekey_s = 0, ping_s = 1, ramp = 0, data_pps = 0, garbage_pps = 0;
  int server_pid = 0;
};

struct Keys {
  std::uint32_t local = 0, remote = 0;
  crypto::TransportKey tx, rx;
  std::uint64_t counter = 0;
};

struct Uplink {
  unsigned client = 0, id = 0, socket = 0;
  std::unique_ptr<ctl::ClientHandshake> hs;
  std::int64_t hs_sent_ns = 0, hs_first_ns = 0;  // this attempt, and the handshake's first attempt
  std::optional<Keys> cur, prev;
  std::int64_t prev_until = 0;
  bool up = false;  // a session answered at least once
  std::int64_t last_rx_ns = 0, next_ping_ns = 0, next_rekey_ns = 0;
  std::int64_t tick_ns = -1;  // when its one queued timer is due (-1: none queued)
};

struct Client {
  std::uint64_t id = 0;
  std::uint32_t addr_be = 0, server_be = 0;  // tunnel addresses (0: not assigned yet)
  std::uint64_t timestamp = 0;
  std::uint8_t low = 0;  // receiver indices' low byte: steers the server's packets to one worker
  std::int64_t next_data_ns = 0;
  std::uint16_t data_id = 0;
};

struct Stats {
  std::uint64_t started = 0, completed = 0, retries = 0, cookies = 0, errors = 0, bad = 0;
  std::uint64_t pings = 0, pongs = 0, data_sent = 0, data_received = 0, garbage = 0, lost = 0, closed = 0;
  std::vector<double> latency_ms;
};

struct Proc {
  long rss_kb = -1;
  double cpu_s = -1;
};

Proc read_proc(int pid) {
  Proc p;
  if (pid <= 0) return p;
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(st, line);)
    if (line.rfind("VmRSS:", 0) == 0) p.rss_kb = std::stol(line.substr(6));
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> f;
    std::size_t i = close + 2;
    while (i < all.size() && f.size() < 15) {
      const auto j = all.find(' ', i);
      f.push_back(all.substr(i, j - i));
      if (j == std::string::npos) break;
      i = j + 1;
    }
    if (f.size() >= 13) p.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return p;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

class Load {
 public:
  Load(const Options& o, const crypto::AuthKey& key, const io::Endpoint& server)
      : o_(o), key_(key), server_(server), macs_(dp::HandshakeMacKeys::for_server(key.server_key)),
        rng_(std::random_device{}()) {}

  void open_sockets() {
    std::uint32_t base = 0;
    if (!o_.source.empty() && inet_pton(AF_INET, o_.source.c_str(), &base) != 1)
      throw std::runtime_error("--source: not an IPv4 address: " + o_.source);
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    for (unsigned i = 0; i < o_.sources; ++i) {
      const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
      const int buf = 4 << 20;
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = o_.source.empty() ? 0 : htonl(ntohl(base) + i);
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        throw std::runtime_error("bind " + io::ipv4_to_string(a.sin_addr.s_addr) + ": " + std::strerror(errno));
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = i;
      epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
      socks_.push_back(fd);
    }
    cookies_.resize(socks_.size());
  }

  void run() {
    clients_.resize(o_.clients);
    ups_.resize(std::size_t{o_.clients} * o_.uplinks);
    const std::int64_t start = io::monotonic_ns();
    for (unsigned c = 0; c < o_.clients; ++c) {
      clients_[c].id = rng_();
      clients_[c].low = static_cast<std::uint8_t>(rng_());
      clients_[c].timestamp = static_cast<std::uint64_t>(io::realtime_ns());
      for (unsigned u = 0; u < o_.uplinks; ++u) {
        const std::size_t i = std::size_t{c} * o_.uplinks + u;
        ups_[i].client = c;
        ups_[i].id = u;
        ups_[i].socket = static_cast<unsigned>(i % socks_.size());
        // All at once, or --ramp clients a second.
        const auto at = o_.ramp > 0 ? start + static_cast<std::int64_t>(c / o_.ramp * 1e9) : start;
        schedule(static_cast<std::uint32_t>(i), at);
      }
    }
    const std::int64_t end = start + static_cast<std::int64_t>(o_.duration_s * 1e9);
    std::int64_t next_report = start + kSecond, next_garbage = start;
    std::vector<epoll_event> evs(64);
    for (;;) {
      const std::int64_t now = io::monotonic_ns();
      if (now >= end) break;
      while (!timers_.empty() && timers_.top().first <= now) {
        const auto [at, i] = timers_.top();
        timers_.pop();
        if (at != ups_[i].tick_ns) continue;  // superseded by an earlier one
        ups_[i].tick_ns = -1;
        tick(i, now);
      }
      if (o_.garbage_pps > 0 && now >= next_garbage) {
        send_garbage();
        next_garbage = now + static_cast<std::int64_t>(1e9 / o_.garbage_pps);
      }
      if (now >= next_report) {
        std::fprintf(stderr, "t=%.0fs held=%u completed=%llu started=%llu cookies=%llu errors=%llu lost=%llu\n",
                     static_cast<double>(now - start) / 1e9, held(now), ull(st_.completed), ull(st_.started),
                     ull(st_.cookies), ull(st_.errors), ull(st_.lost));
        next_report += kSecond;
      }
      std::int64_t wake = std::min(end, next_report);
      if (!timers_.empty()) wake = std::min(wake, timers_.top().first);
      if (o_.garbage_pps > 0) wake = std::min(wake, next_garbage);
      // Rounded up: a wait under a millisecond would otherwise poll without sleeping.
      const int ms = static_cast<int>(std::clamp<std::int64_t>((wake - now + 999'999) / 1'000'000, 0, 100));
      const int n = epoll_wait(epoll_, evs.data(), static_cast<int>(evs.size()), ms);
      for (int k = 0; k < n; ++k) drain(evs[static_cast<std::size_t>(k)].data.u32);
    }
  }

  unsigned held(std::int64_t now) const {
    unsigned n = 0;
    for (const Uplink& u : ups_) n += u.cur && now - u.last_rx_ns < kHeldNs;
    return n;
  }

  void report(const Proc& before, const Proc& after) const {
    const std::int64_t now = io::monotonic_ns();
    const unsigned h = held(now);
    unsigned whole = 0;  // clients with every uplink held
    for (unsigned c = 0; c < o_.clients; ++c) {
      bool all = true;
      for (unsigned u = 0; u < o_.uplinks; ++u) {
        const Uplink& x = ups_[std::size_t{c} * o_.uplinks + u];
        all &= x.cur && now - x.last_rx_ns < kHeldNs;
      }
      whole += all;
    }
    std::printf(
        "{\"clients\": %u, \"uplinks\": %u, \"duration_s\": %.1f, \"handshakes_started\": %llu, "
        "\"handshakes_completed\": %llu, \"handshake_retries\": %llu, \"handshakes_per_s\": %.1f, "
        "\"handshake_p50_ms\": %.2f, \"handshake_p99_ms\": %.2f, \"cookie_replies\": %llu, \"errors\": %llu, "
        "\"bad_packets\": %llu, \"sessions_held\": %u, \"clients_whole\": %u, \"sessions_lost\": %llu, "
        "\"sessions_closed\": %llu, \"pings\": %llu, \"pongs\": %llu, \"data_sent\": %llu, \"data_received\": %llu, "
        "\"garbage_sent\": %llu, \"server_rss_kb_before\": %ld, \"server_rss_kb_after\": %ld, "
        "\"server_rss_bytes_per_client\": %.0f, \"server_cpu_s\": %.2f}\n",
        o_.clients, o_.uplinks, o_.duration_s, ull(st_.started), ull(st_.completed), ull(st_.retries),
        static_cast<double>(st_.completed) / o_.duration_s, percentile(st_.latency_ms, 0.5),
        percentile(st_.latency_ms, 0.99), ull(st_.cookies), ull(st_.errors), ull(st_.bad), h, whole, ull(st_.lost),
        ull(st_.closed), ull(st_.pings), ull(st_.pongs), ull(st_.data_sent), ull(st_.data_received),
        ull(st_.garbage), before.rss_kb, after.rss_kb,
        before.rss_kb >= 0 && after.rss_kb >= 0 ? static_cast<double>(after.rss_kb - before.rss_kb) * 1024 / o_.clients
                                                : -1.0,
        before.cpu_s >= 0 && after.cpu_s >= 0 ? after.cpu_s - before.cpu_s : -1.0);
  }

 private:
  static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

  void send_to_server(unsigned sock, const std::uint8_t* p, std::size_t n) {
    (void)::sendto(socks_[sock], p, n, MSG_DONTWAIT, server_.sa(), server_.len);
  }

  // What is due on uplink i: its first or next handshake, a retry, a Ping, a rekey; then
  // the next tick.
  void tick(std::uint32_t i, std::int64_t now) {
    Uplink& u = ups_[i];
    Client& c = clients_[u.client];
    if (u.cur && u.up && now - u.last_rx_ns > kLostNs) {  // went silent after it was up
      ++st_.lost;
      drop_session(u);
    }
    if (u.prev && now >= u.prev_until) {
      index_.erase(u.prev->local);
      u.prev.reset();
    }
    if (!u.hs && (!u.cur || (o_.rekey_s > 0 && now >= u.next_rekey_ns))) {
      u.hs_first_ns = now;
      initiate(i, now);
    } else if (u.hs && now - u.hs_sent_ns >= kHandshakeRetryNs) {
      ++st_.retries;
      initiate(i, now);
    }
    if (u.cur && now >= u.next_ping_ns) {
      std::uint8_t body[8];
      dp::store_le64(body, static_cast<std::uint64_t>(now));
      send_transport(u, *u.cur, dp::PacketType::Ping, body, sizeof body);
      ++st_.pings;
      u.next_ping_ns = now + static_cast<std::int64_t>(o_.ping_s * 1e9);
    }
    if (o_.data_pps > 0 && u.id == 0 && c.addr_be != 0 && now >= c.next_data_ns) send_data(c, now);
    std::int64_t next = now + kSecond;
    if (u.hs) next = std::min(next, u.hs_sent_ns + kHandshakeRetryNs);
    if (u.cur) next = std::min(next, u.next_ping_ns);
    if (u.cur && o_.rekey_s > 0 && !u.hs) next = std::min(next, u.next_rekey_ns);
    if (o_.data_pps > 0 && u.id == 0) next = std::min(next, std::max(c.next_data_ns, now + 1'000'000));
    schedule(i, std::max(next, now + 1));
  }

  // Uplink i's next tick at `at`, unless one is queued for earlier: one live timer an
  // uplink, however many events ask for one.
  void schedule(std::uint32_t i, std::int64_t at) {
    Uplink& u = ups_[i];
    if (u.tick_ns >= 0 && u.tick_ns <= at) return;
    u.tick_ns = at;
    timers_.push({at, i});
  }

  void initiate(std::uint32_t i, std::int64_t now) {
    Uplink& u = ups_[i];
    Client& c = clients_[u.client];
    if (u.hs) index_.erase(u.hs->sender_index());
    dp::InitPayload p;
    p.uplink = static_cast<std::uint8_t>(u.id);
    p.sender_index = (static_cast<std::uint32_t>(rng_()) & ~0xffu) | c.low;
    while (p.sender_index == 0 || index_.count(p.sender_index) != 0)
      p.sender_index = (static_cast<std::uint32_t>(rng_()) & ~0xffu) | c.low;
    p.inner_ipv4_be = c.addr_be;
    p.timestamp_ns = c.timestamp = std::max(c.timestamp + 1, static_cast<std::uint64_t>(io::realtime_ns()));
    p.client_id = c.id;
    // A cookie is the source address and port's: any uplink sending from it may use it.
    const Cookie& k = cookies_[u.socket];
    const bool cookie = k.mac && now < k.until;
    u.hs = std::make_unique<ctl::ClientHandshake>(key_.server_key, p, nullptr, cookie ? &*k.mac : nullptr);
    index_[p.sender_index] = i;
    u.hs_sent_ns = now;
    ++st_.started;
    send_to_server(u.socket, u.hs->initiation().data(), u.hs->initiation().size());
  }

  void drop_session(Uplink& u) {
    if (u.cur) index_.erase(u.cur->local);
    u.cur.reset();
    u.up = false;
  }

  void send_transport(Uplink& u, Keys& k, dp::PacketType type, const std::uint8_t* body, std::size_t n) {
    std::uint8_t buf[256];
    if (n + dp::kHeaderLen + dp::kTagLen > sizeof buf) return;
    dp::Header h;
    h.type = type;
    h.flags = dp::flag::kEncrypted;
    h.uplink = static_cast<std::uint8_t>(u.id);
    h.receiver = k.remote;
    h.counter = k.counter++;  // sender 0: this one thread
    dp::encode_header(h, buf);
    std::memcpy(buf + dp::kHeaderLen, body, n);
    if (!k.tx.seal(h.counter, {buf, dp::kHeaderLen}, buf + dp::kHeaderLen, n)) return;
    send_to_server(u.socket, buf, dp::kHeaderLen + n + dp::kTagLen);
  }

  // A small UDP datagram from the client's tunnel address to the server's.
  void send_data(Client& c, std::int64_t now) {
    Uplink& u = ups_[static_cast<std::size_t>(&c - clients_.data()) * o_.uplinks];
    c.next_data_ns = std::max(c.next_data_ns, now - kSecond) + static_cast<std::int64_t>(1e9 / o_.data_pps);
    if (!u.cur || c.server_be == 0) return;
    // The benchmark generator's packet: IPv4 UDP, 60 bytes, one stream.
    std::uint8_t body[dp::kSeqLen + 60];
    dp::store_le32(body, data_seq_++);
    const std::size_t n = dp::write_generated(body + dp::kSeqLen, sizeof body - dp::kSeqLen,
                                              {1, c.addr_be, c.server_be, 60}, c.data_id++);
    send_transport(u, *u.cur, dp::PacketType::Data, body, dp::kSeqLen + n);
    ++st_.data_sent;
  }

  void send_garbage() {
    std::uint8_t b[200];
    const std::size_t n = 16 + rng_() % (sizeof b - 16);
    for (std::size_t k = 0; k < n; ++k) b[k] = static_cast<std::uint8_t>(rng_());
    if (rng_() % 2 == 0) {  // a transport header to a random index: reaches the workers' lookup
      dp::Header h;
      h.type = dp::PacketType::Data;
      h.flags = dp::flag::kEncrypted;
      h.receiver = static_cast<std::uint32_t>(rng_());
      h.counter = rng_() & dp::kCounterMask;
      dp::encode_header(h, b);
    }
    send_to_server(static_cast<unsigned>(rng_() % socks_.size()), b, n);
    ++st_.garbage;
  }

  void drain(unsigned sock) {
    std::uint8_t buf[2048];
    for (int k = 0; k < 256; ++k) {
      const ssize_t n = ::recv(socks_[sock], buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0) return;
      receive(buf, static_cast<std::size_t>(n));
    }
  }

  void receive(std::uint8_t* pkt, std::size_t n) {
    dp::Header h;
    if (dp::decode_header({pkt, n}, h) != dp::HeaderError::Ok) return void(++st_.bad);
    const auto it = index_.find(h.receiver);
    if (it == index_.end()) return void(++st_.bad);
    Uplink& u = ups_[it->second];
    const std::int64_t now = io::monotonic_ns();
    if (h.type == dp::PacketType::Handshake || h.type == dp::PacketType::Error) {
      if (!u.hs || h.receiver != u.hs->sender_index()) return void(++st_.bad);
      return handshake_answer(it->second, h, pkt, n, now);
    }
    Keys* k = u.cur && u.cur->local == h.receiver ? &*u.cur : u.prev && u.prev->local == h.receiver ? &*u.prev : nullptr;
    if (k == nullptr || n < dp::kHeaderLen + dp::kTagLen ||
        !k->rx.open(h.counter, {pkt, dp::kHeaderLen}, pkt + dp::kHeaderLen, n - dp::kHeaderLen))
      return void(++st_.bad);
    const std::size_t body = n - dp::kHeaderLen - dp::kTagLen;
    u.last_rx_ns = now;
    u.up = true;
    switch (h.type) {
      case dp::PacketType::Pong:
        ++st_.pongs;
        break;
      case dp::PacketType::Ping: {  // the server probes us: answer as a client does
        std::uint8_t pong[40] = {};
        std::memcpy(pong, pkt + dp::kHeaderLen, std::min<std::size_t>(8, body));
        send_transport(u, *k, dp::PacketType::Pong, pong, sizeof pong);
        break;
      }
      case dp::PacketType::Data:
        ++st_.data_received;
        break;
      case dp::PacketType::Close:
        ++st_.closed;
        if (u.cur && k == &*u.cur) drop_session(u);
        break;
      default:
        break;
    }
  }

  void handshake_answer(std::uint32_t i, const dp::Header& h, const std::uint8_t* pkt, std::size_t n,
                        std::int64_t now) {
    Uplink& u = ups_[i];
    Client& c = clients_[u.client];
    if (h.type == dp::PacketType::Error) {
      ++st_.errors;  // tried again on the next retry
      return;
    }
    if (h.aux == dp::kHandshakeCookie) {
      const auto cookie = dp::open_cookie_reply({pkt, n}, u.hs->sender_index(), u.hs->mac1(), macs_.cookie);
      if (!cookie) return void(++st_.bad);
      ++st_.cookies;
      cookies_[u.socket] = {*cookie, now + 120 * kSecond};
      return initiate(i, now);  // again at once, with mac2
    }
    auto est = u.hs->finish({pkt, n});
    if (!est) return void(++st_.bad);
    st_.latency_ms.push_back(static_cast<double>(now - u.hs_first_ns) / 1e6);
    ++st_.completed;
    c.addr_be = est->response.client_ipv4_be;
    c.server_be = est->response.server_ipv4_be;
    Keys k;
    k.local = u.hs->sender_index();
    k.remote = est->response.sender_index;
    k.tx = crypto::TransportKey(std::move(est->keys.send));
    k.rx = crypto::TransportKey(std::move(est->keys.recv));
    u.hs.reset();
    if (u.prev) index_.erase(u.prev->local);
    u.prev = std::move(u.cur);
    u.prev_until = now + kPreviousNs;
    u.cur = std::move(k);
    index_[u.cur->local] = i;
    u.last_rx_ns = now;  // the response proves the server
    // Every --rekey seconds; the first after a random part of that, as clients that
    // joined at different times would (else a join storm repeats as a rekey storm).
    const double first = u.prev ? 1.0 : std::uniform_real_distribution<double>(0.2, 1.0)(rng_);
    u.next_rekey_ns = now + static_cast<std::int64_t>(o_.rekey_s * first * 1e9);
    u.next_ping_ns = now;  // at once: the server routes the session once a packet came on it
    schedule(i, now);
  }

  const Options& o_;
  const crypto::AuthKey& key_;
  io::Endpoint server_;
  dp::HandshakeMacKeys macs_;
  std::mt19937_64 rng_;
  int epoll_ = -1;
  std::vector<int> socks_;
  struct Cookie {
    std::optional<crypto::Mac> mac;
    std::int64_t until = 0;
  };
  std::vector<Cookie> cookies_;  // by socket
  std::vector<Client> clients_;
  std::vector<Uplink> ups_;
  std::unordered_map<std::uint32_t, std::uint32_t> index_;  // our receiver indices -> uplink
  using Timer = std::pair<std::int64_t, std::uint32_t>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::uint32_t data_seq_ = 0;
  Stats st_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"triglav-loadgen: many virtual clients against one triglav server"};
  app.add_option("--authkey", o.authkey, "the server's AuthKey")->required();
  app.add_option("--server", o.server, "IP:PORT to send to (default: the AuthKey's first address)");
  app.add_option("--clients", o.clients, "virtual clients")->check(CLI::Range(1u, 1'000'000u));
  app.add_option("--uplinks", o.uplinks, "uplinks per client")->check(CLI::Range(1u, 16u));
  app.add_option("--source", o.source, "first IPv4 source address (default: the routed one)");
  app.add_option("--sources", o.sources, "consecutive source addresses from --source")->check(CLI::Range(1u, 65536u));
  app.add_option("--duration", o.duration_s, "seconds")->check(CLI::Range(1.0, 86400.0));
  app.add_option("--rekey", o.rekey_s, "seconds between an uplink's handshakes (0: no rekey)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--ping", o.ping_s, "seconds between an uplink's Pings")->check(CLI::Range(0.05, 60.0));
  app.add_option("--ramp", o.ramp, "clients started a second (0: all at once, a join storm)")
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--data-pps", o.data_pps, "Data packets a second per client (0: none)")->check(CLI::Range(0.0, 1e6));
  app.add_option("--garbage", o.garbage_pps, "random datagrams a second at the server (0: none)")
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--server-pid", o.server_pid, "read the server's memory and CPU time from /proc");
  CLI11_PARSE(app, argc, argv);
  try {
    crypto::AuthKey key;
    std::string err;
    if (!crypto::decode_authkey(o.authkey, key, err)) throw std::runtime_error("bad AuthKey: " + err);
    std::optional<io::Endpoint> server;
    if (!o.server.empty()) {
      server = io::parse_endpoint(o.server, err);
      if (!server) throw std::runtime_error("--server: " + err);
    } else {
      for (const io::Endpoint& e : ctl::authkey_endpoints(key)) {
        if (e.family() != AF_INET) continue;
        server = e;
        break;
      }
      if (!server) throw std::runtime_error("the AuthKey holds no IPv4 address: give --server");
    }
    rlimit nofile{};
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
      nofile.rlim_cur = nofile.rlim_max;
      setrlimit(RLIMIT_NOFILE, &nofile);
    }
    Load load(o, key, *server);
    load.open_sockets();
    const Proc before = read_proc(o.server_pid);
    load.run();
    load.report(before, read_proc(o.server_pid));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "triglav-loadgen: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
