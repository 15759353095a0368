#include "control/authorized_clients.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace triglav::ctl {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::runtime_error("authorized_clients " + where + ": " + what);
}

void check_private(const std::string& file) {
  struct stat st{};
  if (stat(file.c_str(), &st) != 0) fail(file, "cannot be read");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(file, std::string("holds client keys but group or others may read or write it (mode ") + mode +
                   "): chmod 600 " + file);
  }
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
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

void AuthorizedClients::add_file(const std::string& file, const std::string& default_name) {
  check_private(file);
  std::ifstream in(file);
  if (!in) fail(file, "cannot be read");
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    const auto sp = line.find_first_of(" \t");
    const std::string key = line.substr(0, sp);
    const std::string name = sp == std::string::npos ? default_name : trim(line.substr(sp));
    const std::string where = file + " line " + std::to_string(no);
    AuthorizedClient c;
    std::string err;
    if (!crypto::decode_client_key(key, c.key, err)) fail(where, err);
    c.name = name.empty() ? crypto::client_key_label(c.key.id) : name;
    if (auto it = by_id_.find(c.key.id); it != by_id_.end())
      fail(where, "the key of '" + it->second.name + "' again");
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
    for (const auto& f : files_in(path)) out.add_file(f.string(), f.filename().string());
  } else {
    out.add_file(path, {});
  }
  return out;
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
