// Dropping root after set-up (--user): the process becomes an ordinary user that keeps
// only the two capabilities a running tunnel needs (CAP_NET_ADMIN: addresses, routes,
// rules, nftables and socket marks, and undoing them on exit; CAP_NET_RAW: binding new
// uplink sockets to their interfaces).
#pragma once

#include <sys/types.h>

#include <string>

namespace triglav::io {

struct UserId {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The user's ids. Throws std::runtime_error naming the user if there is none.
UserId lookup_user(const std::string& name);

// Becomes `user` (uid, gid, supplementary groups) with CAP_NET_ADMIN and CAP_NET_RAW
// effective and permitted and no other capability, and no way back (no new privileges).
// Call before starting threads: capabilities are per thread. Throws std::runtime_error
// with a one-line reason.
void drop_privileges(const UserId& user);

}  // namespace triglav::io
