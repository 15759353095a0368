#include "control/authorized_clients.h"

#include "control/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace triglav::ctl {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& where, const std::string& what,
                       const char* kind = "authorized_clients") {
  throw std::runtime_error(std::string(kind) + " " + where + ": " + what);
}

void check_private(const std::string& file, const char* kind) {
  struct stat st{};
  if (stat(file.c_str(), &st) != 0) fail(file, "cannot be read", kind);
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(file, std::string("holds secret keys but group or others may read or write it (mode ") + mode +
                   "): chmod 600 " + file, kind);
  }
}

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// Sorted regular files of a directory, hidden and editor backup files left out.
std::vector<fs::path> files_in(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.empty() || n.front() == '.' || n.back() == '~' || !e.is_regular_file()) continue;
    out.push_back(e.path());
  }
  if (ec) fail(dir, ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

void AuthorizedClients::add_file(const std::string& file, const std::string& default_name, const char* kind) {
  check_private(file, kind);
  // The lines are views into one buffer that is wiped afterwards: no copy of a key
  // outlives the load but the decoded ClientKey.
  SecretText text;
  std::string read_error;
  if (!text.read(file, &read_error)) fail(file, "cannot be read: " + read_error, kind);
  std::string_view rest = text.view();
  for (int no = 1; !rest.empty(); ++no) {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const auto sp = line.find_first_of(" \t");
    const std::string_view key = line.substr(0, sp);
    const std::string name = sp == std::string_view::npos ? default_name : std::string(trim(line.substr(sp)));
    const std::string where = file + " line " + std::to_string(no);
    AuthorizedClient c;
    std::string err;
    if (!crypto::decode_client_key(key, c.key, err)) fail(where, err, kind);
    c.name = name.empty() ? crypto::client_key_label(c.key.id) : name;
    if (auto it = by_id_.find(c.key.id); it != by_id_.end())
      fail(where, "the key of '" + it->second.name + "' again", kind);
    const crypto::ClientKeyId id = c.key.id;
    by_id_.emplace(id, std::move(c));
  }
}

AuthorizedClients AuthorizedClients::load(const std::string& path) {
  AuthorizedClients out;
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(path, "no such file or directory");
  if (fs::is_directory(st)) {
    for (const auto& f : files_in(path)) out.add_file(f.string(), f.filename().string(), "authorized_clients");
  } else {
    out.add_file(path, {}, "authorized_clients");
  }
  return out;
}

crypto::ClientKey load_client_key(const std::string& path) {
  AuthorizedClients one;
  one.add_file(path, {}, "client key file");
  if (one.size() != 1)
    fail(path, "holds " + std::to_string(one.size()) + " keys; a client key file holds one", "client key file");
  return std::move(one.by_id_.begin()->second.key);
}

void save_client_key(const std::string& path, const crypto::ClientKey& key, const std::string& name) {
  if (name.find_first_of("#\n") != std::string::npos) fail(path, "a key name holds no '#' or newline", "client key file");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    fail(path, errno == EEXIST ? "already exists; refusing to overwrite it" : std::strerror(errno), "client key file");
  // One buffer sized once, so no reallocation leaves a copy of the key behind; the
  // encoded key is wiped as soon as it is copied in.
  std::string encoded = crypto::encode_client_key(key);
  std::string text;
  text.reserve(encoded.size() + name.size() + 2);
  text += encoded;
  crypto::wipe(encoded.data(), encoded.size());
  if (!name.empty()) text += " " + name;
  text += "\n";
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  crypto::wipe(text.data(), text.size());
  close(fd);
  if (!ok) {
    unlink(path.c_str());
    fail(path, "cannot be written", "client key file");
  }
}

std::string AuthorizedClients::stamp(const std::string& path) {
  auto one = [](const std::string& p) {
    struct stat st{};
    if (stat(p.c_str(), &st) != 0) return std::string("-");
    return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
           std::to_string(st.st_mode) + ";";
  };
  std::string s = one(path);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    try {
      for (const auto& f : files_in(path)) s += f.filename().string() + "=" + one(f.string());
    } catch (const std::exception&) {
      return {};
    }
  }
  return s;
}

}  // namespace triglav::ctl
