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

void SecretText::wipe() noexcept {
  if (text_.capacity() > 0) crypto::wipe(text_.data(), text_.capacity());
  text_.clear();
}

bool SecretText::read(const std::string& path, std::string* error) {
  wipe();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st{};
  if (fd < 0 || fstat(fd, &st) != 0) {
    *error = std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  // Sized once from the file (a secret file is small): the buffer never moves, so no
  // copy of its bytes is left behind in freed memory. A file that grows meanwhile is read
  // up to the size it had.
  constexpr off_t kMax = 16 << 20;
  if (st.st_size > kMax) {
    close(fd);
    *error = "larger than 16 MiB";
    return false;
  }
  text_.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < text_.size()) {
    const ssize_t n = ::read(fd, text_.data() + got, text_.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = std::strerror(errno);
      close(fd);
      wipe();
      return false;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  close(fd);
  text_.resize(got);
  return true;
}

ServerKeyFile load_key_file(const std::string& path) {
  // A private key others can read is no longer private: refuse it rather than use it.
  struct stat st{};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error("key file " + path + " is readable or writable by group or others (mode " + mode +
                             "): chmod 600 " + path);
  }
  SecretText text;
  std::string read_error;
  if (!text.read(path, &read_error)) throw std::runtime_error("cannot read key file " + path + ": " + read_error);
  toml::table t;
  // The parsed table holds its own copy of the key: wiped below, on every way out.
  struct WipeKey {
    toml::table& t;
    ~WipeKey() {
      if (auto* k = t["private_key"].as_string(); k != nullptr && !k->get().empty())
        crypto::wipe(k->get().data(), k->get().size());
    }
  } wipe_key{t};
  try {
    t = toml::parse(text.view(), path);
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
  const auto* priv = t["private_key"].as_string();  // a reference: no copy of the key
  if (priv == nullptr) throw std::runtime_error("key file " + path + ": missing string 'private_key'");
  std::vector<std::uint8_t> raw;
  if (!crypto::from_base64url(priv->get(), raw) || raw.size() != crypto::kKeyLen) {
    crypto::wipe(raw.data(), raw.size());
    throw std::runtime_error("key file " + path +
                             ": 'private_key' is not 32 bytes of base64url");
  }
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
  // One buffer sized once, so no reallocation leaves a copy of the key behind; the
  // encoded key is wiped as soon as it is copied in.
  std::size_t size = 256;
  for (const auto& a : kf.addresses) size += a.size() + 4;
  std::string text;
  text.reserve(size);
  text += "# triglav server key: keep this file secret.\n";
  std::string encoded = crypto::to_base64url(kf.key.priv.data(), crypto::kKeyLen);
  text += "private_key = \"";
  text += encoded;
  crypto::wipe(encoded.data(), encoded.size());
  text += "\"\n";
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
