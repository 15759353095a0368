#include "control/status_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "io/clock.h"

namespace triglav::ctl {
namespace {

constexpr std::int64_t kRequestTimeoutNs = 1'000'000'000;  // a whole request, from the accept
constexpr std::int64_t kAnswerTimeoutNs = 5'000'000'000;   // the whole exchange, from the accept

std::string errno_text() { return std::strerror(errno); }

// A plain close would still deliver what the kernel holds for the peer, at the slow
// reader's pace: a reset drops it.
void abort_on_close(int fd) {
  const linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

std::string http_response(int code, const char* reason, const char* type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

int bind_unix(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) throw std::runtime_error("control socket path too long: " + path);
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  const auto dir = path.substr(0, path.find_last_of('/'));
  if (!dir.empty() && dir != path) mkdir(dir.c_str(), 0755);  // /run/triglav; fine if it exists
  // A socket file left by a process that died is replaced; one that answers is not ours.
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    const bool live = connect(probe, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
    close(probe);
    if (live) throw std::runtime_error("control socket " + path + " is in use by another running process");
  }
  unlink(path.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("control socket: " + errno_text());
  const mode_t old = umask(0177);  // root only: 0600 from the start, no window
  const bool ok = bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 && listen(fd, 16) == 0;
  const int err = errno;
  umask(old);
  if (!ok) {
    close(fd);
    throw std::runtime_error("control socket " + path + ": " + std::strerror(err));
  }
  return fd;
}

int bind_tcp(const io::Endpoint& e) {
  const int fd = socket(e.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("metrics socket: " + errno_text());
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0 || listen(fd, 16) != 0) {
    const int err = errno;
    close(fd);
    throw std::runtime_error("metrics listen " + e.to_string() + ": " + std::strerror(err) +
                             (err == EADDRINUSE ? " (another process has this port)" : ""));
  }
  return fd;
}

}  // namespace

std::string default_socket_path(const std::string& role, const std::string& tun) {
  return "/run/triglav/" + role + "-" + tun + ".sock";
}

StatusServer::StatusServer(const StatusServerConfig& cfg) {
  if (cfg.metrics) {
    http_fd_ = bind_tcp(cfg.metrics_listen);
    http_at_ = cfg.metrics_listen;
  }
  if (!cfg.socket_path.empty()) {
    try {
      unix_fd_ = bind_unix(cfg.socket_path);
      path_ = cfg.socket_path;
    } catch (const std::exception& e) {
      if (cfg.socket_required) {
        if (http_fd_ >= 0) close(http_fd_);
        throw;
      }
      // The default path is per TUN name, and /run is shared by network namespaces:
      // another instance may hold it. Run on; status needs --control-socket then.
      spdlog::warn("{}; running without a control socket (set one with --control-socket)", e.what());
    }
  }
}

StatusServer::~StatusServer() {
  for (auto& c : conns_) close(c.fd);
  if (http_fd_ >= 0) close(http_fd_);
  if (unix_fd_ >= 0) {
    close(unix_fd_);
    unlink(path_.c_str());
  }
}

void StatusServer::set_metrics(bool enabled, const io::Endpoint& listen) {
  if (!enabled && http_fd_ < 0) return;              // off, and stays off
  if (enabled && http_fd_ >= 0 && listen == http_at_) return;  // unchanged
  int fd = -1;
  if (enabled) fd = bind_tcp(listen);  // may throw: then nothing changes
  if (http_fd_ >= 0) {
    for (std::size_t i = 0; i < conns_.size();) {  // answers in progress on the old one end
      if (conns_[i].http) {
        close(conns_[i].fd);
        conns_[i] = conns_.back();
        conns_.pop_back();
      } else {
        ++i;
      }
    }
    close(http_fd_);
  }
  http_fd_ = fd;
  http_at_ = listen;
  if (enabled) spdlog::info("metrics at http://{}/metrics", listen.to_string());
  else spdlog::info("metrics off");
}

void StatusServer::accept_from(int listen_fd, bool http) {
  for (;;) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an aborted connection
    // Each kind has its own limit: whoever reaches the metrics port cannot crowd out
    // the root-only control socket (`triglav status`), nor the other way round.
    if (std::count_if(conns_.begin(), conns_.end(), [http](const Conn& c) { return c.http == http; }) >=
        static_cast<std::ptrdiff_t>(kMaxConnections)) {
      close(fd);
      continue;
    }
    Conn c;
    c.fd = fd;
    c.http = http;
    c.accepted_ns = io::monotonic_ns();
    conns_.push_back(std::move(c));
  }
}

bool StatusServer::serve(Conn& c, const std::function<Status()>& status) {
  const std::int64_t now = io::monotonic_ns();
  if (now - c.accepted_ns > kAnswerTimeoutNs) {  // a reader this slow loses the rest
    abort_on_close(c.fd);
    return true;
  }
  char buf[2048];
  for (int i = 0; i < 64; ++i) {  // bounded: what one round reads of one connection
    const ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {  // half-closed: the answer still goes
      if (c.answered) break;
      if (c.in.empty()) return true;  // closed without a word
      if (!c.http) c.in.push_back('\n');  // on the control socket, the end of the stream ends a request too
      if (!take_request(c, status)) return true;  // closed before a whole request
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return true;
    }
    if (c.answered) continue;  // after the request: read and dropped, so no reset cuts the answer
    c.in.append(buf, static_cast<std::size_t>(n));
    if (c.in.size() > kMaxRequest) {
      answer(c, c.http ? http_response(413, "Payload Too Large", "text/plain", "request too large\n")
                       : std::string("{\"error\":\"request too large\"}\n"));
      break;
    }
  }
  if (!c.answered && !take_request(c, status)) {
    if (now - c.accepted_ns <= kRequestTimeoutNs) return false;
    abort_on_close(c.fd);
    return true;
  }
  // The answer goes as fast as the reader takes it, never blocking this thread.
  while (c.sent < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (n <= 0) return true;
    c.sent += static_cast<std::size_t>(n);
  }
  return true;
}

void StatusServer::answer(Conn& c, std::string text) {
  c.out = std::move(text);
  c.sent = 0;
  c.answered = true;
  c.in.clear();
}

bool StatusServer::take_request(Conn& c, const std::function<Status()>& status) {
  auto text = status_answer(c.http, c.in, status);
  if (!text) return false;
  answer(c, std::move(*text));
  return true;
}

std::optional<std::string> status_answer(bool http, std::string_view in, const std::function<Status()>& status) {
  if (!http) {
    const auto nl = in.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    std::string text;
    try {
      const auto req = nlohmann::json::parse(in.substr(0, nl));
      const std::string cmd = req.value("cmd", "");  // not an object, or not a string: type_error
      if (cmd == "status") text = to_json(status());
      else text = nlohmann::json{{"error", "unknown command '" + cmd + "' (known: status)"}}.dump();
    } catch (const nlohmann::json::exception&) {
      text = R"({"error":"the request is not a JSON object such as {\"cmd\":\"status\"}"})";
    }
    return text + "\n";
  }
  const auto end = in.find("\r\n\r\n");
  if (end == std::string_view::npos && in.find("\n\n") == std::string_view::npos) return std::nullopt;
  const std::string_view line = in.substr(0, in.find_first_of("\r\n"));
  const auto sp1 = line.find(' ');
  const auto sp2 = line.find(' ', sp1 == std::string_view::npos ? 0 : sp1 + 1);
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = sp1 == std::string_view::npos ? std::string_view{} : line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET" && method != "HEAD") return http_response(405, "Method Not Allowed", "text/plain", "only GET\n");
  if (target != "/metrics") return http_response(404, "Not Found", "text/plain", "triglav serves /metrics\n");
  std::string body = to_prometheus(status());
  std::string resp = http_response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
  if (method == "HEAD") resp.resize(resp.size() - body.size());
  return resp;
}

void StatusServer::poll(const std::function<Status()>& status) {
  if (unix_fd_ >= 0) accept_from(unix_fd_, false);
  if (http_fd_ >= 0) accept_from(http_fd_, true);
  for (std::size_t i = 0; i < conns_.size();) {
    if (serve(conns_[i], status)) {
      close(conns_[i].fd);
      conns_[i] = conns_.back();
      conns_.pop_back();
    } else {
      ++i;
    }
  }
}

}  // namespace triglav::ctl
