#include "control/runtime.h"

#include <signal.h>
#include <poll.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "control/host/dns.h"
#include "control/status_server.h"
#include "crypto/aead.h"
#include "io/clock.h"
#include "io/netlink.h"
#include "io/privileges.h"
#include "triglav_version.h"
#include "io/ring.h"
#include "io/system.h"
#include "io/tun_device.h"

namespace triglav::ctl {
namespace {
constexpr std::uint64_t kTagSignal = 1;
constexpr std::uint64_t kTagQueue = 2;
constexpr std::uint64_t kTagLinks = 3;
constexpr std::size_t kRepairEntries = 8192;  // striped packets kept per worker for loss repair

sigset_t handled_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGHUP);
  sigaddset(&s, SIGUSR1);
  return s;
}
}  // namespace

namespace {
struct OwnFile {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
};

// The forked helper: waits until the pipe's other end closes (this process ended, however
// it ended), then removes the files if they are still the ones we made, and the --dns
// copy (restoring resolv.conf first when the process could not). Reads nothing else.
[[noreturn]] void cleanup_helper(int pipe_rd, const std::vector<OwnFile>& files, const std::string& dns_tun) {
  signal(SIGINT, SIG_IGN);  // a Ctrl-C to the process group must not skip the clean-up
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  char b;
  for (int i = 0; i < 1'000'000; ++i) {  // bounded: every read blocks until data, EOF or a signal
    const ssize_t n = read(pipe_rd, &b, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  for (const auto& f : files) {
    struct stat st{};
    if (lstat(f.path.c_str(), &st) == 0 && st.st_dev == f.dev && st.st_ino == f.ino) unlink(f.path.c_str());
  }
  if (!dns_tun.empty()) ResolverOverride::restore_leftover(dns_tun);
  _exit(0);
}
}  // namespace

void drop_root(const std::string& name, const RootCleanup& cleanup) {
  const io::UserId user = io::lookup_user(name);
  std::vector<OwnFile> files;
  for (const auto& p : cleanup.files) {
    struct stat st{};
    if (!p.empty() && lstat(p.c_str(), &st) == 0) files.push_back({p, st.st_dev, st.st_ino});
  }
  // What only root may undo on exit is left to a root helper forked now, while this
  // process has a single thread: /run/triglav stays root's, so the user can plant
  // nothing there that a later root run would trust.
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("--user: pipe: " + std::string(std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    throw std::runtime_error("--user: fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    // Nothing of ours stays open in the helper (the TUN would outlive us), but the pipe
    // and stderr for its log line.
    const int dev_null = open("/dev/null", O_RDWR);
    if (dev_null >= 0) {
      dup2(dev_null, 0);
      dup2(dev_null, 1);
    }
    const int rd = p[0];  // >= 3: 0-2 are open
    if (rd > 3) syscall(SYS_close_range, 3u, static_cast<unsigned>(rd - 1), 0u);
    syscall(SYS_close_range, static_cast<unsigned>(rd + 1), ~0u, 0u);
    cleanup_helper(rd, files, cleanup.dns_tun);
  }
  close(p[0]);  // p[1] stays open, unused, until this process ends
  io::drop_privileges(user);
  spdlog::info("running as {} (uid {}, gid {}) with CAP_NET_ADMIN and CAP_NET_RAW only", name, user.uid, user.gid);
}

void block_signals() {
  const sigset_t s = handled_signals();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

unsigned worker_count(unsigned requested) {
  unsigned n = requested;
  if (n == 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    n = sched_getaffinity(0, sizeof set, &set) == 0 ? static_cast<unsigned>(CPU_COUNT(&set)) : 1;
  }
  return std::clamp(n, 1u, dp::kMaxWorkers);
}

namespace {
// The CPUs this process may run on, in order (worker w is pinned to the w-th, round
// robin, when there are at least as many workers as CPUs; fewer workers are left to
// the scheduler, which keeps two processes' single workers off one CPU); empty if
// unknown.
std::vector<int> allowed_cpus() {
  std::vector<int> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}
}  // namespace

Runtime::Runtime(std::vector<std::vector<io::UdpSocket>> uplinks, const TunSetup& tun)
    : started_ns_(io::monotonic_ns()), qsbr_(std::max(tun.workers, 1u)), snapshots_(qsbr_) {
  const unsigned nw = std::max(tun.workers, 1u);
  if (nw > dp::kMaxWorkers) throw std::runtime_error("at most " + std::to_string(dp::kMaxWorkers) + " workers");
  if (uplinks.size() > dp::kMaxUplinks) throw std::runtime_error("too many uplinks");
  for (std::size_t i = 0; i < uplinks.size(); ++i) {
    if (uplinks[i].size() != nw) throw std::runtime_error("each uplink needs one socket per worker");
    uplinks_[i] = std::move(uplinks[i]);
  }
  const sigset_t s = handled_signals();
  signal_fd_ = signalfd(-1, &s, SFD_NONBLOCK | SFD_CLOEXEC);
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (signal_fd_ < 0 || event_fd_ < 0)
    throw std::runtime_error("cannot create signalfd/eventfd: " + std::string(std::strerror(errno)));
  ring_ = std::make_unique<io::Ring>(16);
  arm(signal_fd_, kTagSignal);
  arm(event_fd_, kTagQueue);

  if (tun.none) {
    // No TUN (triglav benchmark): each worker gets one end of a packet socketpair in its
    // place, which nothing ever writes; its traffic is generated and sunk in the workers.
    for (unsigned w = 0; w < nw; ++w) {
      int sp[2];
      if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) != 0)
        throw std::runtime_error("socketpair: " + std::string(std::strerror(errno)));
      no_tun_.push_back(sp[0]);
      no_tun_.push_back(sp[1]);
    }
  } else {
    tun_ = std::make_unique<io::TunDevice>(io::TunDevice::create(tun.name, static_cast<int>(nw), tun.offload));
    // IPv6 stays off until the tunnel has an IPv6 address (the server's at once, a
    // client's when its server names the prefix), so the kernel sends nothing into it.
    io::set_ipv6(tun.name, false);
    nl_ = std::make_unique<io::Netlink>();
    std::string err = nl_->link_up(tun_->ifindex(), tun.mtu);
    if (!err.empty()) throw std::runtime_error("cannot bring up " + tun.name + ": " + err);
    if (tun.address.addr_be != 0) {
      err = nl_->add_address(tun_->ifindex(), tun.address);
      if (!err.empty())
        throw std::runtime_error("cannot add address " + tun.address.to_string() + " to " + tun.name + ": " + err);
    }
    if (tun.address6) {
      io::set_ipv6(tun.name, true);
      err = nl_->add_address6(tun_->ifindex(), tun.address6->data(), 64);
      if (!err.empty()) throw std::runtime_error("cannot add the tunnel's IPv6 address to " + tun.name + ": " + err);
    }
    for (const auto& r : tun.routes) {
      err = nl_->add_route(tun_->ifindex(), r);
      if (!err.empty())
        throw std::runtime_error("cannot add route " + r.to_string() + " via " + tun.name + ": " + err);
      routes_.push_back(r);
    }
    if (!tun.routes6.empty()) io::set_ipv6(tun.name, true);  // so that routes can lead there
    for (const auto& r : tun.routes6) {
      err = nl_->add_route6(tun_->ifindex(), r);
      if (!err.empty())
        throw std::runtime_error("cannot add route " + r.to_string() + " via " + tun.name + ": " + err);
      routes6_.push_back(r);
    }
    if (tun.full_tunnel) {
      try {
        route_everything(tun);
      } catch (...) {
        remove_policy();  // no destructor runs for a half-built Runtime
        throw;
      }
    }
  }

  const std::vector<int> cpus = allowed_cpus();
  // About the last 8,192 striped packets of each worker (about 1 s of full packets at
  // 100 Mbit/s, 120 ms at 800; less where its 2-way buckets replace early): a repair is
  // asked for within an RTT or so of the loss. Each entry holds a whole slot (2 KiB at
  // the default MTU: 16 MiB a worker, taken as packets are striped).
  const std::size_t max_inner = dp::max_packet_for(tun.mtu) - dp::kHeaderLen - dp::kSeqLen - dp::kFlowSeqLen - dp::kTagLen;
  repair_ = std::make_unique<dp::RepairStores>(nw, kRepairEntries, max_inner);
  for (unsigned w = 0; w < nw; ++w) {
    queues_.push_back(std::make_unique<dp::ControlQueue>());
    handshake_queues_.push_back(std::make_unique<dp::ControlQueue>());
    dp::WorkerConfig wc;
    wc.id = w;
    wc.workers = nw;
    wc.cpu = cpus.empty() || nw < cpus.size() ? -1 : cpus[w % cpus.size()];
    wc.tun_fd = tun_ ? tun_->queue_fd(static_cast<int>(w)) : no_tun_[2 * w + 1];
    wc.tun_vnet_hdr = tun_ && tun_->vnet_hdr();
    wc.max_packet = dp::max_packet_for(tun.mtu);
    for (const auto& u : uplinks_) wc.uplink_fds.push_back(u.empty() ? -1 : u[w].fd());  // -1 where none
    wc.snapshots = &snapshots_;
    wc.qsbr = &qsbr_;
    wc.to_control = queues_.back().get();
    wc.handshakes_to_control = handshake_queues_.back().get();
    wc.pending_handshakes = &pending_handshakes_;  // a server's guard takes its place
    wc.control_eventfd = event_fd_;
    wc.repair = repair_.get();
    workers_.push_back(std::make_unique<dp::Worker>(std::move(wc)));
  }
}

bool Runtime::pop(dp::ControlMessage& m) noexcept {
  // Sessions' messages first: handshake datagrams anyone can send wait behind them.
  for (const auto* list : {&queues_, &handshake_queues_}) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const unsigned q = next_queue_;
      next_queue_ = static_cast<unsigned>((next_queue_ + 1) % list->size());
      if ((*list)[q]->pop(m)) return true;
    }
  }
  return false;
}

void Runtime::expect_handshake(unsigned uplink, std::uint32_t sender_index) noexcept {
  if (uplink < pending_handshakes_.index.size())
    pending_handshakes_.index[uplink].store(sender_index, std::memory_order_relaxed);
}

Runtime::~Runtime() {
  stop_workers();
  if (nl_ && tun_) {
    for (const auto& r : routes_) nl_->del_route(tun_->ifindex(), r);
    for (const auto& r : routes6_) nl_->del_route6(tun_->ifindex(), r);
  }
  remove_policy();
  qsbr_.drain();
  const std::string name = tun_ ? tun_->name() : std::string();
  links_.reset();
  tun_.reset();  // closing the last queue removes the device
  // The kernel unregisters the device as the fd closes; make sure it is gone before we
  // exit so that an immediate restart finds the name free (bounded: 1 s).
  for (int i = 0; i < 1000 && !name.empty() && if_nametoindex(name.c_str()) != 0; ++i) usleep(1000);
  ring_.reset();
  for (int fd : no_tun_) close(fd);
  if (event_fd_ >= 0) close(event_fd_);
  if (signal_fd_ >= 0) close(signal_fd_);
}

std::optional<Reloadable> reload_settings(const ReloadFn& reload, StatusServer& ops) {
  if (!reload) {
    spdlog::info("SIGHUP: no --config file to re-read");
    return std::nullopt;
  }
  std::optional<Reloadable> r;
  try {
    r = reload();
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: {}; keeping the running settings", e.what());
    return std::nullopt;
  }
  try {
    ops.set_metrics(r->metrics, r->metrics_listen);
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: {}; metrics unchanged", e.what());
  }
  spdlog::info("SIGHUP: reloaded; strategy {}", dp::strategy_name(r->sched.strategy));
  return r;
}

Status Runtime::status_header(const char* role, const std::string& address, dp::Strategy strategy) const {
  Status st;
  st.role = role;
  st.version = TRIGLAV_VERSION;
  st.uptime_s = static_cast<double>(io::monotonic_ns() - started_ns_) / 1e9;
  st.tun = tun_ ? tun_->name() : "none";
  st.address = address;
  st.strategy = dp::strategy_name(strategy);
  st.aead = crypto::aead_backend_name(crypto::aead_backend());
  st.workers = static_cast<unsigned>(workers_.size());
  st.counters = totals();
  return st;
}

void Runtime::guard_handshakes(const dp::HandshakeMacKeys& keys, const io::RelaySources* relay) {
  for (auto& w : workers_) w->guard_handshakes(keys, &guard_load_, relay);
}

void Runtime::start_workers() {
  for (auto& w : workers_) w->start();
}

void Runtime::stop_workers() noexcept {
  for (auto& w : workers_) w->stop();
}

void Runtime::arm(int fd, std::uint64_t tag) {
  io_uring_sqe* s = ring_->sqe();
  io_uring_prep_poll_multishot(s, fd, POLLIN);
  io_uring_sqe_set_data64(s, tag);
}

Runtime::Wake Runtime::wait(int timeout_ms) {
  Wake w;
  crypto::forget_thread_keys();  // what this thread sealed (Pings, Closes) keeps no key meanwhile
  __kernel_timespec ts{timeout_ms / 1000, static_cast<long long>(timeout_ms % 1000) * 1'000'000};
  io_uring_cqe* cqe = nullptr;
  io_uring_submit_and_wait_timeout(ring_->get(), &cqe, 1, &ts, nullptr);
  unsigned head;
  unsigned n = 0;
  io_uring_for_each_cqe(ring_->get(), head, cqe) {
    ++n;
    const std::uint64_t tag = io_uring_cqe_get_data64(cqe);
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (tag == kTagSignal) {
      signalfd_siginfo si;
      while (read(signal_fd_, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) w.stop = true;
        if (si.ssi_signo == SIGUSR1) w.dump = true;
        if (si.ssi_signo == SIGHUP) w.reload = true;
      }
      if (!more) arm(signal_fd_, kTagSignal);
    } else if (tag == kTagLinks) {
      links_->drain(on_link_);
      if (!more) arm(links_->fd(), kTagLinks);
    } else if (tag == kTagQueue) {
      std::uint64_t v;
      [[maybe_unused]] auto r = read(event_fd_, &v, sizeof v);
      if (!more) arm(event_fd_, kTagQueue);
    }
  }
  io_uring_cq_advance(ring_->get(), n);
  qsbr_.reclaim();
  return w;
}

bool Runtime::turn(ControlLoop& loop, StatusServer& ops, int timeout_ms) {
  const Wake w = wait(timeout_ms);
  if (w.dump) loop.log_counters();
  if (w.reload) loop.reload();
  dp::ControlMessage m;
  while (pop(m)) loop.on_message(m);
  loop.after_messages();
  ops.poll([&loop] { return loop.status(); });
  return w.stop;
}

void Runtime::add_uplink(unsigned id, std::vector<io::UdpSocket> s) {
  if (s.size() != workers_.size()) throw std::runtime_error("each uplink needs one socket per worker");
  uplinks_[id] = std::move(s);
  for (std::size_t w = 0; w < workers_.size(); ++w) send_command(*workers_[w], {static_cast<std::uint8_t>(id), uplinks_[id][w].fd()});
}

void Runtime::release_uplink(unsigned id) {
  released_[id] = 0;
  for (auto& w : workers_) send_command(*w, {static_cast<std::uint8_t>(id), -1});
}

// The command ring holds 64; only a storm of interface changes fills it. Waits for room
// (bounded: 1 s), since a lost release would keep the uplink's sockets open for good.
void Runtime::send_command(dp::Worker& w, const dp::UplinkCommand& c) {
  for (int i = 0; i < 1000; ++i) {
    if (w.command(c)) return;
    usleep(1000);
  }
  spdlog::error("a worker's command ring stayed full for 1 s: uplink {} change lost", c.id);
}

void Runtime::watch_links(std::function<void(int, bool)> cb) {
  links_ = std::make_unique<io::LinkMonitor>();
  on_link_ = std::move(cb);
  arm(links_->fd(), kTagLinks);
}

dp::CounterTotals Runtime::totals() const noexcept {
  dp::CounterTotals t;
  for (const auto& w : workers_) t.add(w->counters());
  // Not a worker's: the kernel's own count for each socket.
  for (const auto& u : uplinks_)
    for (const auto& sock : u) t.v[static_cast<std::size_t>(dp::Counter::DropInKernel)] += sock.kernel_drops();
  return t;
}

void Runtime::tell_striping(const dp::GroupRoute& route, StripeTold& last, std::int64_t now_ns) {
  const bool same = last.any && last.mask == route.striped;
  if (same && now_ns - last.at_ns < last.again_ns) return;
  std::uint8_t body[dp::kStripeUplinksLen];
  dp::encode_stripe_uplinks(static_cast<std::uint16_t>(route.striped), body);
  bool sent = false;
  for (std::size_t i = 0; i < route.n_views; ++i) {
    dp::Session* s = route.uplinks[i];
    if (s == nullptr || route.views[i].state == dp::HealthState::Down || !s->peer_takes_striped ||
        !s->confirmed.load(std::memory_order_relaxed))
      continue;
    sent |= send_transport(*s, dp::PacketType::Control, s->peer_copy(), body);
  }
  if (sent) last = {route.striped, now_ns, same ? std::min(2 * last.again_ns, std::int64_t{32'000'000'000}) : 1'000'000'000, true};
}

bool Runtime::send_padded_ping(dp::Session& s, const io::Endpoint& to, std::uint64_t body, std::size_t datagram) {
  if (datagram < dp::kHeaderLen + 8 + dp::kTagLen || datagram > 65000 || s.socket >= uplinks_.size() ||
      uplinks_[s.socket].empty())
    return false;
  padded_.assign(datagram, 0);
  dp::store_le64(padded_.data() + dp::kHeaderLen, body);
  const std::size_t len =
      dp::seal_transport(s, dp::kControlSender, dp::PacketType::Ping, padded_.data(), datagram - dp::kHeaderLen - dp::kTagLen);
  return len != 0 && uplinks_[s.socket].front().send_to(padded_.data(), len, to);
}

bool Runtime::send_transport(dp::Session& s, dp::PacketType type, const io::Endpoint& to,
                             std::span<const std::uint8_t> body) {
  std::uint8_t pkt[dp::kHeaderLen + 64 + dp::kTagLen];
  if (body.size() > 64 || s.socket >= uplinks_.size() || uplinks_[s.socket].empty()) return false;
  if (!body.empty()) std::memcpy(pkt + dp::kHeaderLen, body.data(), body.size());
  const std::size_t len = dp::seal_transport(s, dp::kControlSender, type, pkt, body.size());
  return len != 0 && uplinks_[s.socket].front().send_to(pkt, len, to);
}

}  // namespace triglav::ctl
