// The control socket and the metrics endpoint, served by the control thread between its
// other work (poll() after every wake-up, at least every 20 ms). Both are tiny
// request/response protocols on non-blocking sockets, and nothing here ever blocks: each
// connection keeps its answer in a buffer of its own that goes out as fast as the reader
// takes it. A connection that has not sent a whole request within 1 s of its accept, or
// not taken the whole answer within 5 s, is closed; at most kMaxConnections are open on
// each of the two (so /metrics readers never lock out the control socket).
//
//   control socket (unix stream, mode 0600, root only): one JSON line in, one out.
//     {"cmd":"status"} -> the Status as JSON (control/status.h)
//   metrics (TCP, HTTP/1.x): GET /metrics -> Prometheus text exposition format 0.0.4.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/status.h"
#include "io/endpoint.h"

namespace triglav::ctl {

struct StatusServerConfig {
  std::string socket_path;  // empty: no control socket
  bool socket_required = true;  // false (the default path): if taken, warn and run without
  bool metrics = false;
  io::Endpoint metrics_listen;
};

class StatusServer {
 public:
  static constexpr std::size_t kMaxConnections = 16;  // per kind: control socket, metrics
  static constexpr std::size_t kMaxRequest = 8192;

  // Throws std::runtime_error if the metrics address cannot be bound (busy port) or the
  // control socket cannot be made (a required one held by another running process).
  explicit StatusServer(const StatusServerConfig& cfg);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // SIGHUP: starts, moves or stops the metrics listener. Throws std::runtime_error (the
  // old listener stays) if the new address cannot be bound.
  void set_metrics(bool enabled, const io::Endpoint& listen);

  // Accepts, reads and answers what is ready; `status` is called once per answer.
  void poll(const std::function<Status()>& status);

  const std::string& socket_path() const noexcept { return path_; }

 private:
  struct Conn {
    int fd = -1;
    bool http = false;
    std::string in;   // the request so far
    std::string out;  // the answer, once the request is whole
    std::size_t sent = 0;
    bool answered = false;
    std::int64_t accepted_ns = 0;
  };
  void accept_from(int listen_fd, bool http);
  // True when the connection is finished (answered, closed by the peer, bad or too slow).
  bool serve(Conn& c, const std::function<Status()>& status);
  // Once the request is whole: puts its answer in c.out. False while it is not.
  bool take_request(Conn& c, const std::function<Status()>& status);
  static void answer(Conn& c, std::string text);

  std::string path_;
  int unix_fd_ = -1;
  int http_fd_ = -1;
  io::Endpoint http_at_;  // where http_fd_ listens
  std::vector<Conn> conns_;
};

// The answer to a request as received so far (http: an HTTP/1.x request for /metrics;
// else a control-socket JSON line), or nullopt while it is not whole. `status` is called
// only when the answer needs it. Never throws.
std::optional<std::string> status_answer(bool http, std::string_view request, const std::function<Status()>& status);

// The default control socket of a role and TUN name: /run/triglav/ROLE-TUN.sock.
std::string default_socket_path(const std::string& role, const std::string& tun);

}  // namespace triglav::ctl
