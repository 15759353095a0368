#include "control/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <toml++/toml.h>

#include "crypto/authkey.h"

namespace triglav::ctl {

ServerKeyFile load_key_file(const std::string& path) {
  // A private key others can read is no longer private: refuse it rather than use it.
  struct stat st{};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("key file " + path + " is readable or writable by group or others (mode " + mode +
                             "): chmod 600 " + path);
  }
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    if (src.begin.line == 0)
      throw std::runtime_error("cannot read key file " + path + ": " + std::string(e.description()));
    throw std::runtime_error("key file " + path + " line " + std::to_string(src.begin.line) + ": " +
                             std::string(e.description()));
  }
  for (const auto& [k, v] : t) {
    if (k != "private_key" && k != "addresses")
      throw std::runtime_error("key file " + path + ": unknown key '" + std::string(k.str()) +
                               "' (allowed: private_key, addresses)");
  }
  const auto priv = t["private_key"].value<std::string>();
  if (!priv) throw std::runtime_error("key file " + path + ": missing string 'private_key'");
  std::vector<std::uint8_t> raw;
  if (!crypto::from_base64url(*priv, raw) || raw.size() != crypto::kKeyLen)
    throw std::runtime_error("key file " + path +
                             ": 'private_key' is not 32 bytes of base64url");
  ServerKeyFile kf;
  kf.key = crypto::KeyPair::from_private(std::span<const std::uint8_t, crypto::kKeyLen>(raw.data(), crypto::kKeyLen));
  crypto::wipe(raw.data(), raw.size());
  if (const auto* arr = t["addresses"].as_array()) {
    for (const auto& e : *arr) {
      const auto s = e.value<std::string>();
      if (!s) throw std::runtime_error("key file " + path + ": 'addresses' must hold strings");
      kf.addresses.push_back(*s);
    }
  } else if (t.contains("addresses")) {
    throw std::runtime_error("key file " + path + ": 'addresses' must be an array of strings");
  }
  return kf;
}

void save_key_file(const std::string& path, const ServerKeyFile& kf) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST)
      throw std::runtime_error("key file " + path + " already exists; refusing to overwrite it");
    throw std::runtime_error("cannot create key file " + path + ": " + std::strerror(errno));
  }
  std::string text = "# triglav server key: keep this file secret.\n";
  text += "private_key = \"" + crypto::to_base64url(kf.key.priv.data(), crypto::kKeyLen) + "\"\n";
  text += "addresses = [";
  for (std::size_t i = 0; i < kf.addresses.size(); ++i)
    text += (i ? ", \"" : "\"") + kf.addresses[i] + "\"";
  text += "]\n";
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  crypto::wipe(text.data(), text.size());
  close(fd);
  if (!ok) {
    unlink(path.c_str());
    throw std::runtime_error("cannot write key file " + path);
  }
}

}  // namespace triglav::ctl
