// triglav-linkem: a userspace link emulator for a "router" network namespace.
//
// Packets arriving on interface A (towards B) are steered by policy routing into the TUN
// device <prefix>up, those arriving on B into <prefix>dn. The emulator reads them, applies
// the link model of the scenario's schedule for that direction, and writes each packet
// back into the TUN it came from at its delivery time; the kernel then sees it arrive on
// that TUN and forwards it by the main table to the other side. Addresses are untouched,
// so any IP traffic (triglav, wireguard-go, MPTCP) crosses the same emulated link.
//
// Output: one JSON object per line on stdout every --stats-interval and at exit, with
// per-direction counters, the emulator's own drops and queueing, and how late it wrote.
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <queue>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/clock.h"
#include "io/endpoint.h"
#include "io/netlink.h"
#include "io/system.h"
#include "io/tun_device.h"
#include "tools/linkem/link_model.h"
#include "tools/linkem/scenario.h"

namespace {

using namespace triglav;
using namespace triglav::linkem;

std::string read_sysctl(const std::string& path) {
  std::string v;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[64] = {};
    if (std::fgets(buf, sizeof buf, f) != nullptr) v = buf;
    std::fclose(f);
  }
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
  return v;
}

void write_sysctl(const std::string& path, const std::string& value) {
  if (FILE* f = std::fopen(path.c_str(), "w")) {
    std::fputs(value.c_str(), f);
    std::fclose(f);
  }
}

struct Options {
  std::string a, b, scenario, link, prefix = "lem";
  std::uint64_t seed = 1;
  unsigned table = 2001, priority = 1001;
  int mtu = 1500;
  double stats_interval = 1.0;
  std::size_t buffers = 32768;
};

// Policy routing that steers each side's arrivals into its TUN; undone on destruction.
class Steering {
 public:
  Steering(io::Netlink& nl, const Options& o, const io::TunDevice& up, const io::TunDevice& dn)
      : nl_(nl), o_(o) {
    const io::Ipv4Prefix any{0, 0};
    for (int i = 0; i < 2; ++i) {
      const io::TunDevice& t = i == 0 ? up : dn;
      std::string err = nl_.link_up(t.ifindex(), o.mtu);
      if (err.empty()) err = nl_.add_route(t.ifindex(), any, o.table + static_cast<unsigned>(i));
      if (!err.empty()) throw std::runtime_error("cannot set up " + t.name() + ": " + err);
      write_sysctl("/proc/sys/net/ipv4/conf/" + t.name() + "/rp_filter", "0");
      write_sysctl("/proc/sys/net/ipv6/conf/" + t.name() + "/disable_ipv6", "1");
    }
    add_rule(o.a, o.table);
    add_rule(o.b, o.table + 1);
    // Forwarding on, and no reverse-path filter (an injected packet's source is not
    // reachable through the TUN it arrives on). Both are restored on exit.
    set_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter", "0");
    set_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
  }
  ~Steering() {
    for (const auto& [iif, table] : rules_) nl_.del_rule_iif(iif, table, o_.priority);
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) write_sysctl(it->first, it->second);
  }

 private:
  void add_rule(const std::string& iif, unsigned table) {
    const std::string err = nl_.add_rule_iif(iif, table, o_.priority);
    if (!err.empty()) throw std::runtime_error("cannot add rule iif " + iif + " lookup " + std::to_string(table) + ": " + err);
    rules_.emplace_back(iif, table);
  }
  void set_sysctl(const std::string& path, const std::string& value) {
    const std::string old = read_sysctl(path);
    if (old == value) return;
    saved_.emplace_back(path, old);
    write_sysctl(path, value);
  }
  io::Netlink& nl_;
  const Options& o_;
  std::vector<std::pair<std::string, unsigned>> rules_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

struct Pending {
  std::int64_t at;
  std::uint64_t seq;  // FIFO among equal times
  std::uint32_t slot;
  std::uint16_t len;
  std::uint8_t dir;
  bool operator>(const Pending& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

class Emulator {
 public:
  Emulator(const Options& o, const LinkSchedule& sched, int fd_up, int fd_dn)
      : o_(o), sched_(sched), dirs_{Direction(o.seed), Direction(o.seed * 0x9e3779b97f4a7c15ull + 1)} {
    fds_[0] = fd_up;
    fds_[1] = fd_dn;
    slot_size_ = static_cast<std::size_t>(o.mtu);
    const std::size_t bytes = o.buffers * slot_size_;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("cannot map " + std::to_string(bytes) + " bytes of buffers");
    pool_ = static_cast<std::uint8_t*>(m);
    pool_bytes_ = bytes;
    for (std::size_t i = o.buffers; i-- > 0;) free_.push_back(static_cast<std::uint32_t>(i));
  }
  ~Emulator() { munmap(pool_, pool_bytes_); }

  int run(int sig_fd) {
    start_ = io::monotonic_ns();
    std::int64_t next_stats = start_ + static_cast<std::int64_t>(o_.stats_interval * 1e9);
    for (;;) {
      std::int64_t now = io::monotonic_ns();
      deliver_due(now);
      if (now >= next_stats) {
        print_stats(now, false);
        next_stats = now + static_cast<std::int64_t>(o_.stats_interval * 1e9);
      }
      std::int64_t wait = next_stats - now;
      if (!heap_.empty()) wait = std::min(wait, heap_.top().at - now);
      wait = std::max<std::int64_t>(wait, 0);
      pollfd p[3] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}, {sig_fd, POLLIN, 0}};
      timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
      const int n = ppoll(p, 3, &ts, nullptr);
      if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("ppoll: ") + std::strerror(errno));
      if (n <= 0) continue;
      if (p[2].revents & POLLIN) {
        signalfd_siginfo si;
        if (read(sig_fd, &si, sizeof si) == sizeof si &&
            (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM || si.ssi_signo == SIGHUP)) {
          print_stats(io::monotonic_ns(), true);
          return 0;
        }
      }
      for (int d = 0; d < 2; ++d)
        if (p[d].revents & POLLIN) ingest(d);
    }
  }

 private:
  void ingest(int d) {
    for (int i = 0; i < 256; ++i) {
      // A long burst must not hold back departures that are due (before a slot is taken:
      // delivering returns slots to the free list).
      if (i > 0 && (i & 15) == 0) deliver_due(io::monotonic_ns());
      if (free_.empty()) {  // out of buffers: the packet is lost in the emulator
        char sink[65536];
        if (read(fds_[d], sink, sizeof sink) <= 0) return;
        ++pool_drops_;
        continue;
      }
      const std::uint32_t slot = free_.back();
      std::uint8_t* buf = pool_ + std::size_t{slot} * slot_size_;
      const ssize_t n = read(fds_[d], buf, slot_size_);
      if (n <= 0) return;
      const std::int64_t now = io::monotonic_ns();

      Direction& dir = dirs_[d];
      dir.set_params(sched_.at(now - start_, d == 0));
      const Verdict v = dir.on_packet(now, static_cast<std::size_t>(n));
      if (v.copies == 0) continue;  // dropped: the slot stays free
      free_.pop_back();
      heap_.push({v.deliver_ns[0], seq_++, slot, static_cast<std::uint16_t>(n), static_cast<std::uint8_t>(d)});
      if (v.copies == 2 && !free_.empty()) {
        const std::uint32_t s2 = free_.back();
        free_.pop_back();
        std::memcpy(pool_ + std::size_t{s2} * slot_size_, buf, static_cast<std::size_t>(n));
        heap_.push({v.deliver_ns[1], seq_++, s2, static_cast<std::uint16_t>(n), static_cast<std::uint8_t>(d)});
      }
    }
  }

  void deliver_due(std::int64_t now) {
    while (!heap_.empty() && heap_.top().at <= now) {
      const Pending p = heap_.top();
      heap_.pop();
      const std::int64_t late = now - p.at;
      late_max_ns_ = std::max(late_max_ns_, late);
      if (late > 1'000'000) ++late_over_1ms_;
      if (write(fds_[p.dir], pool_ + std::size_t{p.slot} * slot_size_, p.len) < 0) ++write_errors_;
      free_.push_back(p.slot);
      now = io::monotonic_ns();
    }
  }

  void print_stats(std::int64_t now, bool final) {
    std::string s = "{\"t\":" + std::to_string(static_cast<double>(now - start_) / 1e9) +
                    ",\"final\":" + (final ? "true" : "false");
    for (int d = 0; d < 2; ++d) {
      const DirectionStats& st = dirs_[d].stats();
      const LinkParams& lp = dirs_[d].params();
      s += std::string(",\"") + (d == 0 ? "up" : "down") + "\":{";
      s += "\"packets\":" + std::to_string(st.packets) + ",\"bytes\":" + std::to_string(st.bytes);
      s += ",\"delivered\":" + std::to_string(st.delivered) + ",\"duplicated\":" + std::to_string(st.duplicated);
      s += ",\"drop_loss\":" + std::to_string(st.drop_loss) + ",\"drop_burst\":" + std::to_string(st.drop_burst);
      s += ",\"drop_outage\":" + std::to_string(st.drop_outage) + ",\"drop_queue\":" + std::to_string(st.drop_queue);
      s += ",\"max_queued_ms\":" + std::to_string(static_cast<double>(st.max_queued_ns) / 1e6);
      s += ",\"backlog_bytes\":" + std::to_string(dirs_[d].backlog_bytes(now));
      s += ",\"rate_bps\":" + std::to_string(lp.rate_bps) + ",\"delay_ms\":" + std::to_string(static_cast<double>(lp.delay_ns) / 1e6);
      s += ",\"outage\":" + std::string(lp.down ? "true" : "false") + "}";
    }
    s += ",\"in_flight\":" + std::to_string(heap_.size()) + ",\"pool_drops\":" + std::to_string(pool_drops_);
    s += ",\"write_errors\":" + std::to_string(write_errors_);
    s += ",\"late_max_ms\":" + std::to_string(static_cast<double>(late_max_ns_) / 1e6);
    s += ",\"late_over_1ms\":" + std::to_string(late_over_1ms_) + "}";
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }

  const Options& o_;
  const LinkSchedule& sched_;
  Direction dirs_[2];
  int fds_[2] = {-1, -1};
  std::uint8_t* pool_ = nullptr;
  std::size_t pool_bytes_ = 0, slot_size_ = 0;
  std::vector<std::uint32_t> free_;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<Pending>> heap_;
  std::uint64_t seq_ = 0, pool_drops_ = 0, write_errors_ = 0, late_over_1ms_ = 0;
  std::int64_t start_ = 0, late_max_ns_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"triglav-linkem: emulate a link (rate, delay, jitter, loss, outages) between two interfaces"};
  bool check_only = false;
  app.add_flag("--check", check_only, "only parse the scenario and print its schedule");
  app.add_option("--a", o.a, "interface on the client side (its arrivals travel 'up')");
  app.add_option("--b", o.b, "interface on the server side (its arrivals travel 'down')");
  app.add_option("--scenario", o.scenario, "scenario file (TOML)")->required();
  app.add_option("--link", o.link, "which link of the scenario (default: the first)");
  app.add_option("--seed", o.seed, "seed for every random choice")->capture_default_str();
  app.add_option("--tun-prefix", o.prefix, "names of the TUN devices: PREFIXup, PREFIXdn")->capture_default_str();
  app.add_option("--table", o.table, "routing tables used: TABLE and TABLE+1")->capture_default_str();
  app.add_option("--priority", o.priority, "priority of the policy rules")->capture_default_str();
  app.add_option("--mtu", o.mtu, "largest packet carried")->capture_default_str()->check(CLI::Range(576, 9000));
  app.add_option("--stats-interval", o.stats_interval, "seconds between JSON stats lines")->capture_default_str();
  app.add_option("--buffers", o.buffers, "packets that can be in flight")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (check_only) {
      const Scenario sc = load_scenario(o.scenario);
      std::printf("%s: %zu link(s), %.1f s\n", sc.name.c_str(), sc.links.size(),
                  static_cast<double>(sc.duration_ns) / 1e9);
      for (const auto& l : sc.links) {
        for (const auto& seg : l.segments)
          std::printf("  %-10s at %7.2f s%s: up %s %.1f Mbit/s %.1f ms, down %s %.1f Mbit/s %.1f ms\n",
                      l.name.c_str(), static_cast<double>(seg.at_ns) / 1e9, seg.ramp ? " (ramp)" : "",
                      seg.up.down ? "OUTAGE" : "", seg.up.rate_bps / 1e6, static_cast<double>(seg.up.delay_ns) / 1e6,
                      seg.down.down ? "OUTAGE" : "", seg.down.rate_bps / 1e6,
                      static_cast<double>(seg.down.delay_ns) / 1e6);
      }
      return 0;
    }
    if (o.a.empty() || o.b.empty()) throw std::runtime_error("--a and --b are required");
    if (!io::has_net_admin()) throw std::runtime_error("needs root (CAP_NET_ADMIN)");
    for (const std::string* i : {&o.a, &o.b})
      if (if_nametoindex(i->c_str()) == 0) throw std::runtime_error("no interface named '" + *i + "' here");
    if (o.a == o.b) throw std::runtime_error("--a and --b must be different interfaces");
    const Scenario sc = load_scenario(o.scenario);
    const LinkSchedule* sched = o.link.empty() ? &sc.links.front() : sc.link(o.link);
    if (sched == nullptr) throw std::runtime_error("scenario " + o.scenario + " has no link '" + o.link + "'");
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGHUP);
    sigprocmask(SIG_BLOCK, &ss, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a closed stdout must not skip the clean-up
    const int sig_fd = signalfd(-1, &ss, SFD_CLOEXEC);
    io::TunDevice up = io::TunDevice::create(o.prefix + "up", 1);
    io::TunDevice dn = io::TunDevice::create(o.prefix + "dn", 1);
    io::Netlink nl;
    Steering steering(nl, o, up, dn);
    std::fprintf(stderr, "triglav-linkem: link '%s' between %s and %s (scenario %s, seed %llu)\n",
                 sched->name.c_str(), o.a.c_str(), o.b.c_str(), o.scenario.c_str(),
                 static_cast<unsigned long long>(o.seed));
    Emulator em(o, *sched, up.queue_fd(0), dn.queue_fd(0));
    return em.run(sig_fd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "triglav-linkem: error: %s\n", e.what());
    return 1;
  }
}
