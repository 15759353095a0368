#include "io/tcp_relay.h"

#include "io/tcp_framing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <array>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace triglav::io {
namespace {

constexpr std::size_t kMaxDatagram = 65535;  // what 2 length bytes can say
constexpr int kBatch = 64;                    // reads per readiness event, then others get a turn
constexpr std::uint64_t kTagTcp = 0, kTagUdp = 1, kTagListener = 2, kTagStop = 3;

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

Endpoint with_port(Endpoint e, std::uint16_t port) {
  if (e.family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&e.addr)->sin6_port = htons(port);
  else reinterpret_cast<sockaddr_in*>(&e.addr)->sin_port = htons(port);
  return e;
}

// A UDP socket bound to `local` (port 0) and connected to `peer`: it hears only `peer`.
int udp_pair_socket(const Endpoint& local, const Endpoint& peer, std::uint16_t& bound_port) {
  const int fd = socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(errno_text("tcp relay: udp socket"));
  const int buf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  const Endpoint any = with_port(local, 0);
  if (bind(fd, any.sa(), any.len) != 0 || connect(fd, peer.sa(), peer.len) != 0) {
    const std::string e = errno_text(("tcp relay: udp socket on " + local.to_string()).c_str());
    ::close(fd);
    throw std::runtime_error(e);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  bound_port = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).port();
  return fd;
}

void tcp_options(int fd, const TcpRelay::Limits& l) {
  const int one = 1;
  if (l.nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  const int idle = std::max(1, l.keepalive_s), interval = std::max(1, l.keepalive_s / 3), count = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

}  // namespace

std::uint64_t RelaySources::of(const Endpoint& from) const noexcept {
  if (from.family() == AF_INET6) {
    static constexpr std::uint8_t kLo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&from.addr)->sin6_addr, kLo6, 16) != 0) return 0;
  } else if (reinterpret_cast<const sockaddr_in*>(&from.addr)->sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
    return 0;
  }
  return by_port_[slot(from)].load(std::memory_order_relaxed);
}

void RelaySources::set(const Endpoint& local, std::uint64_t source) noexcept {
  by_port_[slot(local)].store(source, std::memory_order_relaxed);
}

struct TcpRelay::Impl {
  struct Conn {
    std::uint64_t serial = 0;
    bool client = false;
    unsigned id = 0;  // client: the uplink
    int tcp = -1, udp = -1;
    Endpoint udp_local;  // server: the UDP socket's address, as the workers see it
    State state = State::Connecting;
    std::string error;
    FrameAssembler in;  // what TCP delivered, cut into datagrams
    explicit Conn(std::size_t max_frame) : in(max_frame) {}
    std::vector<std::uint8_t> out;  // frames for TCP not yet taken by the kernel
    std::size_t out_head = 0;
    bool want_out = false;  // EPOLLOUT armed
    std::int64_t created_s = 0, last_s = 0;  // last_s: a datagram relayed either way
    bool answered = false;  // server: the tunnel sent something back
    std::uint64_t source = 0;  // server: the peer's source_id (per-source limit)

    ~Conn() { close_fds(); }
    void close_fds() {
      if (tcp >= 0) ::close(tcp);
      if (udp >= 0) ::close(udp);
      tcp = udp = -1;
    }
  };
  struct Listener {
    int fd = -1;
    Endpoint target;
  };

  Limits limits;
  int ep = -1, stop_fd = -1;
  mutable std::mutex mu;
  std::map<std::uint64_t, std::unique_ptr<Conn>> conns;
  std::map<unsigned, std::uint64_t> by_id;  // client links
  std::vector<Listener> listeners;
  std::uint64_t next_serial = 1;
  std::map<std::uint64_t, unsigned> per_source;  // server: open connections by address
  std::int64_t listen_paused_until = 0;  // server: accept() ran out of descriptors; try again then
  TcpRelayStats st;
  std::thread thread;
  std::vector<std::uint8_t> dgram = std::vector<std::uint8_t>(kMaxDatagram);  // one read from UDP
  std::vector<std::uint8_t> scratch = std::vector<std::uint8_t>(kMaxDatagram);  // one read from TCP

  void watch(int fd, std::uint64_t tag, std::uint64_t serial, std::uint32_t events, int op = EPOLL_CTL_ADD) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = serial << 2 | tag;
    epoll_ctl(ep, op, fd, &ev);
  }

  Conn& add_conn(std::unique_ptr<Conn> c) {
    c->serial = next_serial++;
    c->created_s = c->last_s = now_s();
    Conn& r = *c;
    conns[r.serial] = std::move(c);
    ++st.open;
    watch(r.udp, kTagUdp, r.serial, EPOLLIN);
    r.want_out = r.state == State::Connecting;
    watch(r.tcp, kTagTcp, r.serial, EPOLLIN | (r.want_out ? EPOLLOUT : 0u));
    return r;
  }

  // A client link stays (Failed, with its reason) until its owner closes it; a server
  // connection simply goes.
  void end(Conn& c, const std::string& why) {
    if (c.tcp < 0) return;
    c.close_fds();
    --st.open;
    if (!c.client) {
      auto it = per_source.find(c.source);
      if (it != per_source.end() && --it->second == 0) per_source.erase(it);
      if (limits.sources != nullptr) limits.sources->set(c.udp_local, 0);
    }
    if (c.client) {
      c.state = State::Failed;
      c.error = why;
    } else {
      conns.erase(c.serial);
    }
  }

  void arm_out(Conn& c, bool on) {
    if (c.want_out == on) return;
    c.want_out = on;
    watch(c.tcp, kTagTcp, c.serial, EPOLLIN | (on ? EPOLLOUT : 0u), EPOLL_CTL_MOD);
  }

  // Returns false when the connection ended.
  bool flush(Conn& c) {
    if (c.state != State::Connected) return true;
    while (c.out_head < c.out.size()) {
      const ssize_t n = send(c.tcp, c.out.data() + c.out_head, c.out.size() - c.out_head, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out_head += static_cast<std::size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        arm_out(c, true);
        if (c.out_head >= 65536) {  // keep the queue from creeping forward forever
          c.out.erase(c.out.begin(), c.out.begin() + static_cast<std::ptrdiff_t>(c.out_head));
          c.out_head = 0;
        }
        return true;
      } else {
        end(c, errno_text("tcp send"));
        return false;
      }
    }
    c.out.clear();
    c.out_head = 0;
    arm_out(c, false);
    return true;
  }

  void on_udp(Conn& c) {
    for (int i = 0; i < kBatch; ++i) {
      const ssize_t n = recv(c.udp, dgram.data(), dgram.size(), MSG_DONTWAIT);
      if (n < 0) break;  // EAGAIN, or an ICMP error from the other side: nothing to relay
      if (n == 0) continue;  // a frame cannot say 0 (it means "bad"): nothing to send
      if (static_cast<std::size_t>(n) > limits.max_frame) {  // the far end would close on it
        ++st.dropped_too_big;
        continue;
      }
      c.last_s = now_s();
      if (limits.is_answer == nullptr || limits.is_answer(dgram.data(), static_cast<std::size_t>(n))) c.answered = true;
      if (c.out.size() - c.out_head + 2 + static_cast<std::size_t>(n) > limits.queue_bytes) {
        ++st.dropped_full;
        continue;
      }
      c.out.push_back(static_cast<std::uint8_t>(n >> 8));
      c.out.push_back(static_cast<std::uint8_t>(n));
      c.out.insert(c.out.end(), dgram.data(), dgram.data() + n);
      ++st.datagrams_to_tcp;
    }
    flush(c);
  }

  void on_tcp(Conn& c, std::uint32_t events) {
    if (c.state == State::Connecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.tcp, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        errno = err;
        end(c, errno_text("tcp connect"));
        return;
      }
      c.state = State::Connected;
      if (!flush(c)) return;
    } else if ((events & EPOLLOUT) && !flush(c)) {
      return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    for (int i = 0; i < kBatch; ++i) {
      const ssize_t n = read(c.tcp, scratch.data(), scratch.size());
      if (n == 0) {
        end(c, "the other end closed the connection");
        return;
      }
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) end(c, errno_text("tcp receive"));
        return;
      }
      if (!take_bytes(c, scratch.data(), static_cast<std::size_t>(n))) return;
    }
  }

  void relay_datagram(Conn& c, const std::uint8_t* d, std::size_t len) {
    send(c.udp, d, len, MSG_DONTWAIT);  // a full socket drops, as a path would
    ++st.datagrams_from_tcp;
    c.last_s = now_s();  // whole datagrams, not trickled bytes, keep a connection alive
  }

  // Bytes read from TCP: whole frames go to UDP straight from the read buffer. False
  // when the connection ended (a bad length).
  bool take_bytes(Conn& c, const std::uint8_t* p, std::size_t n) {
    if (c.in.feed(p, n, [&](const std::uint8_t* d, std::size_t len) { relay_datagram(c, d, len); })) return true;
    ++st.closed_bad;
    end(c, c.in.error());
    return false;
  }

  void pause_listeners(bool pause) {
    for (std::size_t i = 0; i < listeners.size(); ++i)
      watch(listeners[i].fd, kTagListener, i, pause ? 0u : static_cast<std::uint32_t>(EPOLLIN), EPOLL_CTL_MOD);
  }

  void on_listener(const Listener& l) {
    for (int i = 0; i < kBatch; ++i) {
      sockaddr_storage peer{};
      socklen_t plen = sizeof peer;
      const int fd = accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // The pending connection stays queued and the listener ready: without a pause
          // the thread would spin. Housekeeping listens again a second later.
          ++st.accept_errors;
          pause_listeners(true);
          listen_paused_until = now_s() + 1;
        }
        return;
      }
      const std::uint64_t source = source_id(Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), plen));
      if (st.open >= limits.max_connections || per_source[source] >= limits.per_source) {
        if (per_source[source] == 0) per_source.erase(source);
        ::close(fd);
        ++st.refused;
        continue;
      }
      tcp_options(fd, limits);
      auto c = std::make_unique<Conn>(limits.max_frame);
      c->tcp = fd;
      c->state = State::Connected;
      try {
        std::uint16_t port = 0;
        c->udp = udp_pair_socket(Endpoint::loopback(l.target.family(), 0), l.target, port);
        c->udp_local = Endpoint::loopback(l.target.family(), port);
      } catch (const std::exception&) {
        ++st.refused;
        continue;  // c closes the TCP connection
      }
      ++st.accepted;
      c->source = source;
      if (limits.sources != nullptr) limits.sources->set(c->udp_local, source);
      ++per_source[source];
      add_conn(std::move(c));
    }
  }

  void housekeeping() {
    const std::int64_t now = now_s();
    if (listen_paused_until != 0 && now >= listen_paused_until) {
      listen_paused_until = 0;
      pause_listeners(false);
    }
    std::vector<Conn*> stale;
    for (auto& [serial, c] : conns) {
      if (c->client || c->tcp < 0) continue;
      if (now - c->last_s > limits.idle_timeout_s || (!c->answered && now - c->created_s > limits.unanswered_timeout_s))
        stale.push_back(c.get());
    }
    for (Conn* c : stale) {
      ++st.closed_idle;
      end(*c, "idle");
    }
  }

  void run() {
    epoll_event evs[64];
    std::int64_t next_check = now_s() + 1;
    for (;;) {
      const int n = epoll_wait(ep, evs, 64, 1000);
      if (n < 0 && errno != EINTR) return;
      std::lock_guard<std::mutex> lk(mu);
      for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = evs[i].data.u64 & 3, key = evs[i].data.u64 >> 2;
        if (tag == kTagStop) return;
        if (tag == kTagListener) {
          if (key < listeners.size()) on_listener(listeners[key]);
          continue;
        }
        auto it = conns.find(key);  // it may have ended earlier in this batch
        if (it == conns.end() || it->second->tcp < 0) continue;
        if (tag == kTagUdp) on_udp(*it->second);
        else on_tcp(*it->second, evs[i].events);
      }
      if (now_s() >= next_check) {
        housekeeping();
        next_check = now_s() + 1;
      }
    }
  }
};

TcpRelay::TcpRelay(Limits limits) : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
  impl_->ep = epoll_create1(EPOLL_CLOEXEC);
  impl_->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl_->ep < 0 || impl_->stop_fd < 0) {
    const std::string e = errno_text("tcp relay: epoll");
    if (impl_->ep >= 0) ::close(impl_->ep);
    if (impl_->stop_fd >= 0) ::close(impl_->stop_fd);
    throw std::runtime_error(e);
  }
  impl_->watch(impl_->stop_fd, kTagStop, 0, EPOLLIN);
}

void TcpRelay::start() {
  if (impl_->thread.joinable()) return;
  try {
    impl_->thread = std::thread([this] {
      pthread_setname_np(pthread_self(), "triglav-tcp");  // as ps and /proc show it
      impl_->run();
    });
  } catch (const std::system_error& e) {
    throw std::runtime_error(std::string("tcp relay: cannot start its thread: ") + e.what());
  }
}

TcpRelay::~TcpRelay() {
  const std::uint64_t one = 1;
  if (write(impl_->stop_fd, &one, sizeof one) < 0) {
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->conns.clear();
  for (const auto& l : impl_->listeners) ::close(l.fd);
  ::close(impl_->stop_fd);
  ::close(impl_->ep);
}

void TcpRelay::listen(const Endpoint& at, const Endpoint& target, bool v6only) {
  const int fd = socket(at.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(errno_text("tcp socket"));
  const int one = 1, only = v6only ? 1 : 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restarts despite TIME_WAIT
  if (at.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
  if (bind(fd, at.sa(), at.len) != 0 || ::listen(fd, 128) != 0) {
    const std::string e = errno_text(("cannot listen on TCP " + at.to_string()).c_str());
    ::close(fd);
    throw std::runtime_error(e);
  }
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->listeners.push_back({fd, target});
  impl_->watch(fd, kTagListener, impl_->listeners.size() - 1, EPOLLIN);
}

Endpoint TcpRelay::connect(unsigned id, const Endpoint& server, const std::string& device, std::uint32_t mark,
                           const Endpoint& uplink) {
  close(id);
  auto c = std::make_unique<Impl::Conn>(impl_->limits.max_frame);
  c->client = true;
  c->id = id;
  std::uint16_t port = 0;
  c->udp = udp_pair_socket(uplink, uplink, port);
  c->tcp = socket(server.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->tcp < 0) throw std::runtime_error(errno_text("tcp socket"));
  if (!device.empty() &&
      setsockopt(c->tcp, SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), static_cast<socklen_t>(device.size())) != 0)
    throw std::runtime_error(errno_text(("tcp socket on " + device).c_str()));
  if (mark != 0 && setsockopt(c->tcp, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0)
    throw std::runtime_error(errno_text("tcp socket mark (SO_MARK)"));
  tcp_options(c->tcp, impl_->limits);
  if (::connect(c->tcp, server.sa(), server.len) != 0 && errno != EINPROGRESS)
    throw std::runtime_error(errno_text(("tcp connect to " + server.to_string()).c_str()));
  std::lock_guard<std::mutex> lk(impl_->mu);
  Impl::Conn& r = impl_->add_conn(std::move(c));
  impl_->by_id[id] = r.serial;
  return with_port(uplink, port);
}

void TcpRelay::close(unsigned id) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return;
  auto c = impl_->conns.find(it->second);
  if (c != impl_->conns.end()) {
    if (c->second->tcp >= 0) --impl_->st.open;
    impl_->conns.erase(c);  // closing the fds takes them out of epoll
  }
  impl_->by_id.erase(it);
}

TcpRelay::State TcpRelay::state(unsigned id) const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return State::None;
  auto c = impl_->conns.find(it->second);
  return c == impl_->conns.end() ? State::None : c->second->state;
}

std::string TcpRelay::error(unsigned id) const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return {};
  auto c = impl_->conns.find(it->second);
  return c == impl_->conns.end() ? std::string() : c->second->error;
}

TcpRelayStats TcpRelay::stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  TcpRelayStats s = impl_->st;
  for (const auto& [serial, c] : impl_->conns) s.buffered += c->in.held();
  return s;
}

}  // namespace triglav::io
