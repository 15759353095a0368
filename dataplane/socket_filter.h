// The classic BPF program a server attaches to its UDP sockets, so that the kernel drops
// datagrams that cannot be ours before queueing them: no copy, no completion, no wakeup
// (docs/PROTOCOL.md, "Dropped in the kernel"). They are counted as drop_in_kernel.
#pragma once

#include <linux/filter.h>

#include <vector>

namespace triglav::dp {

// Accepts: a header of version 1 and type 1-8 with room for a tag (transport packets),
// whole initiations (type 7, aux 1, a multiple of kInitLen bytes: GRO may coalesce), or
// path-MTU probes (type 7, aux 4, any length). Drops everything else, Error packets and
// handshake responses included (only clients take those).
std::vector<sock_filter> server_socket_filter();

}  // namespace triglav::dp
