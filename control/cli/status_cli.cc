#include "control/cli/status_cli.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

namespace triglav::ctl {
namespace {

using nlohmann::json;

std::string find_socket(const std::string& given) {
  if (!given.empty()) return given;
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/triglav", ec))
    if (e.path().extension() == ".sock") found.push_back(e.path().string());
  if (found.empty())
    throw std::runtime_error("no control socket in /run/triglav: is triglav running? (or give --socket PATH)");
  if (found.size() > 1) {
    std::string list;
    for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
    throw std::runtime_error("several control sockets (" + list + "): choose one with --socket PATH");
  }
  return found.front();
}

// One request, one JSON line back; bounded by 3 s.
json ask(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    const int e = errno;
    close(fd);
    throw std::runtime_error("cannot connect to " + path + ": " + std::strerror(e) +
                             (e == EACCES ? " (the control socket is for root)" : "") +
                             (e == ECONNREFUSED ? " (a stale socket: triglav is not running)" : ""));
  }
  const std::string req = "{\"cmd\":\"status\"}\n";
  std::string in;
  bool ok = send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (ok && in.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      ok = false;
      break;
    }
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  if (!ok || in.empty()) throw std::runtime_error("no answer from " + path + " within 3 s");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("unreadable answer from " + path);
  if (j.contains("error")) throw std::runtime_error(path + ": " + j["error"].get<std::string>());
  return j;
}

std::string rate(double bps) {
  char b[32];
  if (bps >= 1e9) std::snprintf(b, sizeof b, "%.2f Gbit/s", bps / 1e9);
  else if (bps >= 1e6) std::snprintf(b, sizeof b, "%.2f Mbit/s", bps / 1e6);
  else if (bps >= 1e3) std::snprintf(b, sizeof b, "%.1f kbit/s", bps / 1e3);
  else std::snprintf(b, sizeof b, "%.0f bit/s", bps);
  return b;
}

std::string bytes(double n) {
  char b[32];
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    ++u;
  }
  std::snprintf(b, sizeof b, u == 0 ? "%.0f %s" : "%.1f %s", n, units[u]);
  return b;
}

std::string rtt(const json& u) {
  const double ms = u.value("srtt_ms", -1.0);
  if (ms < 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f ms", ms);
  return b;
}

std::string duration(double s) {
  char b[32];
  const long t = static_cast<long>(s);
  if (t >= 86400) std::snprintf(b, sizeof b, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
  else if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, t % 3600 / 60);
  else std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  return b;
}

void uplink_header(bool detailed, const char* indent) {
  std::printf("%s%-3s %-21s %-10s %10s %6s %14s %11s", indent, "id", "uplink", "state", "rtt", "loss", "throughput",
              "sent");
  if (detailed) std::printf(" %10s %5s  %s", "rttvar", "hs", "peer");
  std::printf("\n");
}

void uplink_row(const json& u, bool detailed, const char* indent) {
  std::printf("%s%-3u %-21s %-10s %10s %5.1f%% %14s %11s", indent, u.value("id", 0u),
              u.value("name", std::string()).c_str(), u.value("state", std::string()).c_str(), rtt(u).c_str(),
              u.value("loss", 0.0) * 100, rate(u.value("throughput_bps", 0.0)).c_str(),
              bytes(u.value("tx_bytes", 0.0)).c_str());
  if (detailed)
    std::printf(" %7.2f ms %5llu  %s%s", u.value("rttvar_ms", 0.0),
                static_cast<unsigned long long>(u.value("handshakes", 0ull)), u.value("peer", std::string()).c_str(),
                u.value("transport", std::string("udp")) == "tcp" ? " (tcp)" : "");
  std::printf("\n");
}

void print_status(const json& j, const StatusQuery& q) {
  const bool server = j.value("role", "") == "server";
  std::printf("triglav %s %s, up %s, %s %s, strategy %s: %s", j.value("role", "").c_str(),
              j.value("version", "").c_str(), duration(j.value("uptime_s", 0.0)).c_str(), j.value("tun", "").c_str(),
              j.value("address", "").c_str(), j.value("strategy", "").c_str(), j.value("state", "").c_str());
  if (q.detailed) std::printf(" (AEAD %s, %u workers)", j.value("aead", "").c_str(), j.value("workers", 0u));
  if (server) std::printf(", %zu client(s)", j["clients"].size());
  std::printf("\n");
  const auto& c = j["counters"];
  std::printf("traffic: sent %s in %llu packets, received %s in %llu packets, %llu dropped\n",
              bytes(c.value("tx_bytes", 0.0)).c_str(), static_cast<unsigned long long>(c.value("tx_packets", 0ull)),
              bytes(c.value("rx_bytes", 0.0)).c_str(), static_cast<unsigned long long>(c.value("rx_packets", 0ull)),
              static_cast<unsigned long long>([&] {
                unsigned long long d = 0;
                for (const auto& [k, v] : c.items())
                  if (k.rfind("drop_", 0) == 0) d += v.get<unsigned long long>();
                return d;
              }()));
  std::printf("\n");
  if (server) {
    if (j["clients"].empty()) std::printf("no clients\n");
    for (const auto& cl : j["clients"]) {
      const std::string key = cl.value("key", "");
      std::printf("client %s (id %s%s%s)%s\n", cl.value("address", "").c_str(), cl.value("id", "").c_str(),
                  key.empty() ? "" : ", key ", key.c_str(), cl.value("benchmark", false) ? ": benchmark session" : "");
      uplink_header(q.detailed, "  ");
      for (const auto& u : cl["uplinks"]) uplink_row(u, q.detailed, "  ");
    }
  } else {
    if (j["uplinks"].empty()) std::printf("no uplinks\n");
    else uplink_header(q.detailed, "");
    for (const auto& u : j["uplinks"]) uplink_row(u, q.detailed, "");
  }
  if (q.detailed) {
    std::printf("\ncounters:\n");
    for (const auto& [k, v] : c.items()) std::printf("  %-22s %llu\n", k.c_str(), v.get<unsigned long long>());
  }
}

// Every uplink in the answer, with the client it belongs to on a server.
std::vector<std::pair<std::string, json>> all_uplinks(const json& j) {
  std::vector<std::pair<std::string, json>> out;
  for (const auto& u : j["uplinks"]) out.emplace_back("", u);
  for (const auto& cl : j["clients"])
    for (const auto& u : cl["uplinks"]) out.emplace_back(cl.value("address", ""), u);
  return out;
}

void print_once(const json& j, const StatusQuery& q) {
  if (q.what == StatusQuery::What::Status) {
    if (q.json) std::printf("%s\n", j.dump(2).c_str());
    else print_status(j, q);
    return;
  }
  const auto ups = all_uplinks(j);
  if (q.what == StatusQuery::What::UplinkList) {
    if (q.json) {
      json arr = json::array();
      for (const auto& [client, u] : ups) {
        json x = u;
        if (!client.empty()) x["client"] = client;
        arr.push_back(x);
      }
      std::printf("%s\n", arr.dump(2).c_str());
      return;
    }
    const bool server = j.value("role", "") == "server";
    if (server) std::printf("%-15s ", "client");
    uplink_header(q.detailed, "");
    for (const auto& [client, u] : ups) {
      if (server) std::printf("%-15s ", client.c_str());
      uplink_row(u, q.detailed, "");
    }
    return;
  }
  for (const auto& [client, u] : ups) {  // UplinkShow: by name, peer or id
    if (u.value("name", "") != q.uplink && u.value("peer", "") != q.uplink &&
        std::to_string(u.value("id", 0u)) != q.uplink)
      continue;
    if (q.json) {
      std::printf("%s\n", u.dump(2).c_str());
      return;
    }
    if (!client.empty()) std::printf("%-12s %s\n", "client", client.c_str());
    std::printf("%-12s %u\n%-12s %s\n%-12s %s\n%-12s %s\n%-12s %s\n", "id", u.value("id", 0u), "uplink",
                u.value("name", "").c_str(), "state", u.value("state", "").c_str(), "peer", u.value("peer", "").c_str(),
                "transport", u.value("transport", "udp").c_str());
    std::printf("%-12s %s (variance %.2f ms)\n%-12s %.1f %%\n%-12s %s\n%-12s %s\n%-12s %llu\n", "rtt", rtt(u).c_str(),
                u.value("rttvar_ms", 0.0), "loss", u.value("loss", 0.0) * 100, "throughput",
                rate(u.value("throughput_bps", 0.0)).c_str(), "sent", bytes(u.value("tx_bytes", 0.0)).c_str(),
                "handshakes", static_cast<unsigned long long>(u.value("handshakes", 0ull)));
    return;
  }
  throw std::runtime_error("no uplink '" + q.uplink + "' (see `triglav uplink list`)");
}

}  // namespace

RunningClient running_client(const std::string& socket) {
  std::string path = socket;
  if (path.empty()) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/triglav", ec))
      if (e.path().extension() == ".sock" && e.path().filename().string().rfind("client-", 0) == 0)
        found.push_back(e.path().string());
    if (found.size() != 1)
      throw std::runtime_error(found.empty() ? "no running client (no client socket in /run/triglav)"
                                             : "several running clients: choose one with --socket PATH");
    path = found.front();
  }
  const json j = ask(path);
  if (j.value("role", "") != "client" || !j.contains("authkey"))
    throw std::runtime_error(path + " is not a client's control socket");
  return {j["authkey"].get<std::string>(), j.value("endpoint", "")};
}

int run_status(const StatusQuery& q) {
  const std::string path = find_socket(q.socket);
  for (int n = 1;; ++n) {
    const json j = ask(path);
    if (q.watch && !q.json) std::printf("\x1b[H\x1b[2J");  // home, clear: redraw in place
    print_once(j, q);
    std::fflush(stdout);
    if (!q.watch || (q.count > 0 && n >= q.count)) return 0;
    std::this_thread::sleep_for(std::chrono::duration<double>(q.interval_s));
  }
}

}  // namespace triglav::ctl
