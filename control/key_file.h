// The server's key file (TOML, mode 0600):
//
//   private_key = "<base64url of the 32-byte X25519 private key>"
//   addresses = ["192.0.2.1:7443"]      # what goes into the AuthKey
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "crypto/key.h"

namespace triglav::ctl {

// The whole text of a file that holds secret keys, read with plain read(2) into one
// buffer of its own (no stream buffers, no copies) and wiped when dropped.
class SecretText {
 public:
  // False with errno's reason in *error when the file cannot be read.
  bool read(const std::string& path, std::string* error);
  std::string_view view() const noexcept { return text_; }
  std::string& text() noexcept { return text_; }
  SecretText() = default;
  SecretText(const SecretText&) = delete;
  SecretText& operator=(const SecretText&) = delete;
  ~SecretText() { wipe(); }

 private:
  void wipe() noexcept;
  std::string text_;
};

struct ServerKeyFile {
  crypto::KeyPair key;
  std::vector<std::string> addresses;
};

// Throws std::runtime_error naming the file and the problem.
ServerKeyFile load_key_file(const std::string& path);
// Creates the file with mode 0600; refuses to overwrite. Throws std::runtime_error.
void save_key_file(const std::string& path, const ServerKeyFile& kf);

}  // namespace triglav::ctl
