#include "control/host/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace triglav::ctl {
namespace {

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

Daemon Daemon::start() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error(std::string("--daemon: pipe: ") + std::strerror(errno));
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("--daemon: fork: ") + std::strerror(errno));
  if (pid > 0) {  // parent: relay the child's verdict
    close(p[1]);
    std::string msg;
    char buf[512];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      msg.append(buf, static_cast<std::size_t>(n));
    }
    if (!msg.empty() && msg[0] == 'R') {
      if (msg.size() > 1) std::fputs(msg.c_str() + 1, stdout);
      std::exit(0);
    }
    if (!msg.empty() && msg[0] == 'E') {
      std::fprintf(stderr, "triglav: error: %s\n", msg.c_str() + 1);
      std::exit(1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    std::fprintf(stderr, "triglav: error: the daemon exited during start-up\n");
    std::exit(1);
  }
  close(p[0]);
  setsid();  // no controlling terminal: a closing shell does not hang us up
  if (chdir("/") != 0) {
  }
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) close(null);
  }
  auto logger = spdlog::syslog_logger_st("triglav-daemon", "triglav", LOG_PID, LOG_DAEMON);
  logger->set_level(spdlog::default_logger()->level());
  logger->set_pattern("%l %v");
  spdlog::set_default_logger(logger);
  return Daemon(p[1]);
}

Daemon::~Daemon() {
  if (fd_ >= 0) close(fd_);
}

void Daemon::report(char kind, const std::string& text) {
  if (fd_ < 0) return;
  write_all(fd_, std::string(1, kind) + text);
  close(fd_);
  fd_ = -1;
}

void Daemon::ready(const std::string& message) { report('R', message); }
void Daemon::failed(const std::string& error) { report('E', error); }

PidFile::PidFile(std::string path) : path_(std::move(path)) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      write_all(fd, std::to_string(getpid()) + "\n");
      close(fd);
      return;
    }
    if (errno != EEXIST) throw std::runtime_error("pid file " + path_ + ": " + std::strerror(errno));
    FILE* f = std::fopen(path_.c_str(), "r");
    long other = 0;
    if (f != nullptr) {
      if (std::fscanf(f, "%ld", &other) != 1) other = 0;
      std::fclose(f);
    }
    if (other > 0 && kill(static_cast<pid_t>(other), 0) == 0)
      throw std::runtime_error("pid file " + path_ + ": triglav is already running (pid " + std::to_string(other) + ")");
    unlink(path_.c_str());  // stale: its process is gone
  }
  throw std::runtime_error("pid file " + path_ + ": cannot create it");
}

PidFile::~PidFile() { unlink(path_.c_str()); }

}  // namespace triglav::ctl
