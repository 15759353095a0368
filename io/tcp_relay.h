// The TCP transport, for networks that let no UDP through (tcp_fallback): a thread that
// carries datagrams over TCP connections, each datagram framed by its length (2 bytes,
// network order; docs/PROTOCOL.md). The tunnel itself does not change: at each end a
// UDP socket on a local address stands in for the path, so workers, sessions and
// handshakes see ordinary UDP peers, and every byte on the TCP connection is a datagram
// the tunnel already encrypts and authenticates.
//   Client (connect): one link per uplink that fell back. Its UDP socket sits on an
//     address the uplink's own sockets reach (the interface's address, or loopback for
//     an unbound uplink); its TCP connection leaves through the uplink's interface.
//   Server (listen): a TCP listener beside each UDP listening address. Each accepted
//     connection gets a UDP socket of its own on loopback that sends to the listening
//     address, so to the workers each connection is one peer address.
// Relayed datagrams are not on the workers' fast path: this is a fallback, and the TCP
// connection's own congestion control sets its pace. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "io/endpoint.h"

namespace triglav::io {

struct TcpRelayStats {
  std::uint64_t accepted = 0;         // server: connections accepted
  std::uint64_t refused = 0;          // server: connections over a limit, closed at once
  std::uint64_t open = 0;             // connections open now
  std::uint64_t datagrams_to_tcp = 0; // datagrams framed onto a connection
  std::uint64_t datagrams_from_tcp = 0;
  std::uint64_t dropped_full = 0;     // a connection's send queue was full
  std::uint64_t dropped_too_big = 0;  // a datagram over max_frame, not framed
  std::uint64_t buffered = 0;         // bytes held now for frames not yet whole, all connections
  std::uint64_t closed_bad = 0;       // a frame of length 0 (nothing sends one)
  std::uint64_t closed_idle = 0;      // idle, or (server) never answered by the tunnel
  std::uint64_t accept_errors = 0;    // server: accept() failed (out of file descriptors)
};

// Server: which TCP peer each relay connection speaks for, by the loopback address and
// port of the connection's UDP socket (the source the workers see): its io::source_id,
// so that per-source handshake limits count the TCP client, not the relay. Written by
// the relay thread, read lock-free by the workers; 0 where no connection is.
class RelaySources {
 public:
  RelaySources() : by_port_(new std::atomic<std::uint64_t>[2 * 65536]()) {}
  // The source behind a datagram from `from`, or 0 when it is no relay socket's.
  std::uint64_t of(const Endpoint& from) const noexcept;
  void set(const Endpoint& local, std::uint64_t source) noexcept;

 private:
  static std::size_t slot(const Endpoint& e) noexcept { return (e.family() == AF_INET6 ? 65536u : 0u) + e.port(); }
  std::unique_ptr<std::atomic<std::uint64_t>[]> by_port_;
};

class TcpRelay {
 public:
  struct Limits {
    unsigned max_connections = 1024;  // server: open connections at most
    int idle_timeout_s = 180;         // server: a connection that relayed no datagram either way
    int unanswered_timeout_s = 10;    // server: a connection the tunnel never answered
    std::size_t queue_bytes = 512 * 1024;  // per connection, waiting for TCP to take it
    bool nodelay = true;   // TCP_NODELAY: each datagram goes at once
    int keepalive_s = 30;  // idle seconds before TCP keepalives (then every third of it, 3 lost: closed)
    unsigned per_source = 256;            // server: open connections from one address (a NAT) or IPv6 /64 at most
    // The largest datagram a frame may carry: longer lengths end the connection (the
    // tunnel never sends one; a receive buffer holds at most one frame).
    std::size_t max_frame = 9040;
    RelaySources* sources = nullptr;  // server: told each connection's TCP peer
    // Server: whether a datagram from the tunnel counts as an answer (a connection the
    // tunnel never answers is closed after unanswered_timeout_s). Null: any datagram.
    bool (*is_answer)(const std::uint8_t* data, std::size_t len) = nullptr;
  };
  enum class State { None, Connecting, Connected, Failed };

  explicit TcpRelay(Limits limits);  // throws std::runtime_error
  ~TcpRelay();                       // stops the thread and closes every socket
  // Starts the relay's thread (nothing is relayed before). A process that drops root
  // calls it after the drop: capabilities and no_new_privs are per thread, and a thread
  // started earlier would keep root's. Throws std::runtime_error.
  void start();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  // Server: accepts TCP at `at` and relays each connection's datagrams to `target` (the
  // UDP listening socket's address; `at` itself when it is a specific address). Throws
  // std::runtime_error with a one-line reason (a port in use, no permission). An IPv6
  // `at` takes IPv4 too unless v6only, as for UdpSocket::bind.
  void listen(const Endpoint& at, const Endpoint& target, bool v6only = false);

  // Client: opens link `id` to `server` from `device` (empty: any) with SO_MARK `mark`
  // (0: none). local: the address for the link's UDP socket (port 0). Returns the
  // endpoint the uplink sends to. The connection completes in the background (state()).
  // Throws std::runtime_error with a one-line reason.
  Endpoint connect(unsigned id, const Endpoint& server, const std::string& device, std::uint32_t mark,
                   const Endpoint& local);
  void close(unsigned id);
  State state(unsigned id) const;
  std::string error(unsigned id) const;  // why it failed or closed

  TcpRelayStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace triglav::io
