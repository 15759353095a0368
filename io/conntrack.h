// Counting connection-tracking entries by their ct mark, over ctnetlink (a dump request
// with a mark filter; each answer is checked again here). How many NAT mappings our
// nftables rules hold: triglav_nat_active_entries. Control thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace triglav::io {

// Entries of this network namespace's IPv4 conntrack table whose ct mark is `mark`.
// Empty, with `err` set to a one-line reason, when the table cannot be read (no
// nf_conntrack_netlink, no CAP_NET_ADMIN).
std::optional<std::uint64_t> count_conntrack_marked(std::uint32_t mark, std::string& err);

}  // namespace triglav::io
