// The classic BPF program a server attaches to its UDP sockets, so that the kernel drops
// datagrams that cannot be ours before queueing them: no copy, no completion, no wakeup
// (docs/PROTOCOL.md, "Dropped in the kernel"). They are counted as drop_in_kernel.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <vector>

namespace triglav::dp {

// Accepts: a header of version 1 and type 1-8 with room for a tag (transport packets),
// whole initiations (type 7, aux 1, a multiple of kInitLen bytes: GRO may coalesce), or
// path-MTU probes (type 7, aux 4, any length). Drops everything else, Error packets and
// handshake responses included (only clients take those).
std::vector<sock_filter> server_socket_filter();

// Which worker's socket of a SO_REUSEPORT group (one per worker) receives a transport
// packet: the low byte of its receiver index mod workers. Every session of one peer has
// receiver indices with the same low byte (the receiver chooses them so), so everything
// one peer sends reaches one worker whichever uplink carried it: a striped flow's reorder
// buffer sees all of its packets (dataplane/reorder.h), and a flow that changes uplink is
// written to the TUN by the same worker. (Not the sender id as well: the kernel's GRO
// joins datagrams of one source address and port, which a peer's workers share, before
// the program runs on the first of them.) Peers spread over the workers by their low
// byte. Handshake and Error packets are left to the kernel's hash of the source address
// and port (the program returns an index past the group). The program sees the UDP
// payload at offset 0.
std::vector<sock_filter> steering_program(unsigned workers);
// The worker the program picks for a transport packet (tests, and the docs' example).
inline unsigned steered_worker(std::uint32_t receiver_index, unsigned workers) noexcept {
  return (receiver_index & 0xffu) % workers;
}

}  // namespace triglav::dp
