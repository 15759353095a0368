// The worker's thread: started, commanded and stopped by the control thread. The loop
// it runs is in loop.cc.
#include "dataplane/worker/worker.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "dataplane/worker/loop.h"

namespace triglav::dp {

Worker::Worker(WorkerConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.id >= kMaxWorkers) throw std::runtime_error("too many workers");
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  cmd_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0 || cmd_fd_ < 0) throw std::runtime_error("eventfd: " + std::string(std::strerror(errno)));
}

Worker::~Worker() {
  stop();
  close(stop_fd_);
  close(cmd_fd_);
}

void Worker::guard_handshakes(const HandshakeMacKeys& keys, GuardLoad* load, const io::RelaySources* relay) noexcept {
  cfg_.handshake_keys = keys;
  cfg_.guard_load = load;
  cfg_.relay_sources = relay;
}

bool Worker::command(const UplinkCommand& c) noexcept {
  if (!commands_.push(c)) return false;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = write(cmd_fd_, &one, sizeof one);
  return true;
}

void Worker::wake() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = write(cmd_fd_, &one, sizeof one);
}

void Worker::start() {
  std::promise<std::string> started;
  auto result = started.get_future();
  thread_ = std::thread([this, p = std::move(started)]() mutable { run(std::move(p)); });
  const std::string err = result.get();
  if (!err.empty()) {
    thread_.join();
    throw std::runtime_error(err);
  }
}

void Worker::stop() noexcept {
  if (!thread_.joinable()) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = write(stop_fd_, &one, sizeof one);
  thread_.join();
}

void Worker::run(std::promise<std::string> started) noexcept {
  std::unique_ptr<Loop> loop;
  try {
    loop = std::make_unique<Loop>(cfg_, counters_, stop_fd_, cmd_fd_, commands_);
  } catch (const std::exception& e) {
    started.set_value(std::string("worker ") + std::to_string(cfg_.id) + ": " + e.what());
    return;
  }
  if (cfg_.cpu >= 0) {  // best effort: a CPU set changed under us only costs locality
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cfg_.cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  started.set_value({});
  loop->run();
}

}  // namespace triglav::dp
