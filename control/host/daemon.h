// --daemon and --pid-file. The parent forks and waits for the child to report either
// readiness (it then prints what the child sends, e.g. the server's AuthKey, and exits
// 0) or its start-up error (printed, exit 1), so a script that starts a daemon still
// learns whether it started. The child leaves the terminal's session, its standard
// streams go to /dev/null and its log to syslog.
#pragma once

#include <string>

namespace triglav::ctl {

class Daemon {
 public:
  // Forks before any thread exists. Returns only in the child; the parent exits with the
  // child's verdict.
  static Daemon start();
  Daemon(Daemon&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Daemon(const Daemon&) = delete;
  ~Daemon();

  void ready(const std::string& message);  // printed by the parent on standard output
  void failed(const std::string& error);   // printed by the parent as the error

 private:
  explicit Daemon(int fd) : fd_(fd) {}
  void report(char kind, const std::string& text);
  int fd_ = -1;
};

// A pid file, created for this process and removed when it goes. Refuses (throws) when
// the file names a process that is still running; a stale one is replaced.
class PidFile {
 public:
  explicit PidFile(std::string path);
  ~PidFile();
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

 private:
  std::string path_;
};

}  // namespace triglav::ctl
