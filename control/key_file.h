// The server's key file (TOML, mode 0600):
//
//   private_key = "<base64url of the 32-byte X25519 private key>"
//   addresses = ["192.0.2.1:7443"]      # what goes into the AuthKey
#pragma once

#include <string>
#include <vector>

#include "crypto/key.h"

namespace triglav::ctl {

struct ServerKeyFile {
  crypto::KeyPair key;
  std::vector<std::string> addresses;
};

// Throws std::runtime_error naming the file and the problem.
ServerKeyFile load_key_file(const std::string& path);
// Creates the file with mode 0600; refuses to overwrite. Throws std::runtime_error.
void save_key_file(const std::string& path, const ServerKeyFile& kf);

}  // namespace triglav::ctl
