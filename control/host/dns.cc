#include "control/host/dns.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace triglav::ctl {
namespace {

constexpr const char* kMarker = "# triglav: ";

bool read_file(const std::string& path, std::string& out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return n == 0;
}

// In place: truncate and write, no rename (a bind-mounted or symlinked file stays so).
bool write_in_place(const std::string& path, const std::string& text, mode_t mode = 0644) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  const bool ok = off == text.size() && fsync(fd) == 0;
  return close(fd) == 0 && ok;
}

// The same through a descriptor kept open (after --user drops root, the path can no
// longer be opened for writing).
bool read_fd(int fd, std::string& out) {
  out.clear();
  char buf[4096];
  ssize_t n;
  off_t off = 0;
  while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  return n == 0;
}

bool write_fd(int fd, const std::string& text) {
  if (ftruncate(fd, 0) != 0) return false;
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = pwrite(fd, text.data() + off, text.size() - off, static_cast<off_t>(off));
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return fsync(fd) == 0;
}

// One backup per TUN name and network namespace (/run is shared by namespaces).
std::string backup_path(const std::string& tun) {
  struct stat st{};
  const unsigned long long ns = stat("/proc/self/ns/net", &st) == 0 ? static_cast<unsigned long long>(st.st_ino) : 0;
  return "/run/triglav/resolv-" + tun + "-" + std::to_string(ns) + ".conf";
}

}  // namespace

ResolverOverride::ResolverOverride(const std::vector<io::Ipv4Prefix>& servers, const std::string& tun,
                                   std::string path)
    : path_(std::move(path)), tun_(tun), servers_(servers), backup_(backup_path(tun)) {
  if (servers.empty() || servers.size() > 3)
    throw std::runtime_error("--dns: give 1 to 3 servers (the resolver reads at most 3)");
  if (!read_file(path_, previous_))
    throw std::runtime_error("--dns: cannot read " + path_ + ": " + std::strerror(errno));
  mkdir("/run/triglav", 0755);
  if (!write_in_place(backup_, previous_, 0600))
    throw std::runtime_error("--dns: cannot save a copy of " + path_ + " in " + backup_ + ": " + std::strerror(errno));
  fd_ = open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (fd_ < 0) {
    const int e = errno;
    unlink(backup_.c_str());
    throw std::runtime_error("--dns: cannot write " + path_ + ": " + std::strerror(e));
  }
  for (const auto& s : servers)
    if (s.addr_be == 0) return;  // the server's address: after the handshake
  if (!point_at(0)) {
    const int e = errno;
    close(fd_);
    unlink(backup_.c_str());
    throw std::runtime_error("--dns: cannot write " + path_ + ": " + std::strerror(e));
  }
}

bool ResolverOverride::point_at(std::uint32_t server_be) {
  std::string text =
      std::string(kMarker) + "DNS through " + tun_ + "; the previous file is restored when triglav exits\n";
  for (const auto& s : servers_) text += "nameserver " + io::ipv4_to_string(s.addr_be != 0 ? s.addr_be : server_be) + "\n";
  if (!write_fd(fd_, text)) {
    const int e = errno;
    (void)write_fd(fd_, previous_);  // truncated or half written: put the old one back
    spdlog::error("DNS: cannot write {}: {}", path_, std::strerror(e));
    errno = e;
    return false;
  }
  ours_ = std::move(text);
  spdlog::info("DNS: {} now points at the tunnel's servers", path_);
  return true;
}

ResolverOverride::~ResolverOverride() {
  if (ours_.empty()) {  // never written: nothing to restore
    close(fd_);
    unlink(backup_.c_str());
    return;
  }
  std::string now;
  if (read_fd(fd_, now) && now != ours_) {
    // Someone (DHCP, an administrator) wrote the file since: theirs is newer than ours.
    spdlog::warn("DNS: {} changed while triglav ran; leaving it as it is", path_);
  } else if (!write_fd(fd_, previous_)) {
    spdlog::error("DNS: cannot restore {} ({}); its previous content is in {}", path_, std::strerror(errno), backup_);
    close(fd_);
    return;
  }
  close(fd_);
  unlink(backup_.c_str());
}

bool ResolverOverride::restore_leftover(const std::string& tun, const std::string& path) {
  const std::string backup = backup_path(tun);
  std::string saved, now;
  if (!read_file(backup, saved)) return false;
  if (read_file(path, now) && now.rfind(kMarker, 0) == 0 && write_in_place(path, saved)) {
    spdlog::info("DNS: restored {} as a previous run left it", path);
    unlink(backup.c_str());
    return true;
  }
  unlink(backup.c_str());  // the file is no longer ours: the copy is stale
  return false;
}

}  // namespace triglav::ctl
