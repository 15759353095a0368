// The server's list of authorised client keys (`authorized_clients`): a file, or a
// directory of files, each line "tgc1_... [name]"; '#' starts a comment. A file in a
// directory names its key after itself unless the line gives a name. The files hold
// secrets, so like the server key they are refused when group or others can read them.
#pragma once

#include <map>
#include <string>

#include "crypto/client_key.h"

namespace triglav::ctl {

struct AuthorizedClient {
  std::string name;
  crypto::ClientKey key;
};

class AuthorizedClients {
 public:
  // Throws std::runtime_error naming the file, the line and the problem.
  static AuthorizedClients load(const std::string& path);

  const AuthorizedClient* find(const crypto::ClientKeyId& id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &it->second;
  }
  std::size_t size() const noexcept { return by_id_.size(); }

  // What stat() says of the path and (for a directory) every file in it: when this
  // changes, the list may have changed. Empty if the path cannot be read.
  static std::string stamp(const std::string& path);

 private:
  friend crypto::ClientKey load_client_key(const std::string& path);
  void add_file(const std::string& file, const std::string& default_name, const char* what);
  std::map<crypto::ClientKeyId, AuthorizedClient> by_id_;
};

// A client's own key file (`triglav keygen --client`): one such line. Throws
// std::runtime_error naming the file and the problem.
crypto::ClientKey load_client_key(const std::string& path);
// Creates it (mode 0600, never overwriting); the name is a label for the server's list.
void save_client_key(const std::string& path, const crypto::ClientKey& key, const std::string& name);

}  // namespace triglav::ctl
