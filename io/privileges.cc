#include "io/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace triglav::io {
namespace {
[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("--user: " + what + ": " + std::strerror(errno));
}

}  // namespace

UserId lookup_user(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  const int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || found == nullptr) throw std::runtime_error("--user " + name + ": no such user");
  return UserId{name, pw.pw_uid, pw.pw_gid};
}

void drop_privileges(const UserId& user) {
  // The bounding set first (that needs CAP_SETPCAP, gone with root): no child gets more.
  // Up to the kernel's last capability, which may be newer than these headers.
  for (int c = 0; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; ++c)
    if (c != CAP_NET_ADMIN && c != CAP_NET_RAW && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
      fail("cannot drop capability " + std::to_string(c) + " from the bounding set");
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail("PR_SET_KEEPCAPS");
  if (initgroups(user.name.c_str(), user.gid) != 0) fail("cannot set the groups of " + user.name);
  if (setresgid(user.gid, user.gid, user.gid) != 0) fail("cannot become group " + std::to_string(user.gid));
  if (setresuid(user.uid, user.uid, user.uid) != 0) fail("cannot become user " + user.name);
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) fail("PR_SET_KEEPCAPS");
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  const std::uint32_t keep = (1u << CAP_NET_ADMIN) | (1u << CAP_NET_RAW);  // both below 32
  data[0].effective = data[0].permitted = keep;
  if (syscall(SYS_capset, &hdr, data) != 0) fail("cannot keep CAP_NET_ADMIN and CAP_NET_RAW");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS");
  if (user.uid != 0 && setuid(0) == 0) {  // must be impossible now
    errno = EPERM;
    fail("root could be regained");
  }
}

}  // namespace triglav::io
