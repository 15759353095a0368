// TUN offloads (IFF_VNET_HDR): every packet read from or written to the TUN starts with
// a 10-byte virtio_net_hdr. With TUNSETOFFLOAD (checksum, TSO4/6) the kernel hands us
// TCP super-packets of up to 64 KB and leaves checksums for us to complete; we cut
// them into MSS-sized segments with complete checksums before sealing (userspace GSO),
// so one read replaces dozens. On the way in, consecutive segments of one TCP flow are
// joined back into one super-packet per TUN write (userspace GRO), so the kernel's TCP
// stack takes one packet where it would take dozens. Pure functions on packet bytes;
// worker thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace triglav::dp {

inline constexpr std::size_t kVnetHdrLen = 10;

struct VnetHdr {  // host byte order (the TUN's, on little-endian machines)
  std::uint8_t flags = 0;     // kVnetNeedsCsum: complete the checksum at csum_start/offset
  std::uint8_t gso_type = 0;  // kGsoNone, kGsoTcp4, kGsoTcp6 (| kGsoEcn)
  std::uint16_t hdr_len = 0;
  std::uint16_t gso_size = 0;  // segment payload (the MSS)
  std::uint16_t csum_start = 0;
  std::uint16_t csum_offset = 0;
};
inline constexpr std::uint8_t kVnetNeedsCsum = 1;
inline constexpr std::uint8_t kGsoNone = 0, kGsoTcp4 = 1, kGsoTcp6 = 4, kGsoUdpL4 = 5, kGsoEcn = 0x80;

VnetHdr load_vnet_hdr(const std::uint8_t* p) noexcept;
void store_vnet_hdr(std::uint8_t* p, const VnetHdr& h) noexcept;

// The one's-complement sum of n bytes (network order), folded to 16 bits, added to sum.
std::uint16_t csum_add(std::uint16_t sum, const std::uint8_t* p, std::size_t n) noexcept;
// The Internet checksum of an IPv4 header (its checksum field taken as zero).
std::uint16_t ipv4_header_checksum(const std::uint8_t* ip, std::size_t ihl) noexcept;
// The TCP/UDP checksum of a segment at ip + l4_off (its checksum field taken as zero),
// with the pseudo header of the IPv4 or IPv6 header at ip.
std::uint16_t l4_checksum(const std::uint8_t* ip, std::size_t l4_off, std::size_t len, std::uint8_t proto) noexcept;

// How a super-packet splits: its headers (IP + TCP, or IP + UDP) are repeated in front
// of each segment of at most mss payload bytes.
struct GsoPlan {
  std::size_t ip_len = 0;   // IP header (IPv4 with options, or the fixed IPv6 header)
  std::size_t hdr_len = 0;  // IP + TCP (or UDP) headers
  std::size_t mss = 0;
  std::size_t payload = 0;  // payload bytes in all
  unsigned segments = 0;
  bool v6 = false;
  bool udp = false;  // UDP segmentation (USO): each segment its own datagram
};
inline constexpr unsigned kMaxGsoSegmentsIn = 512;

enum class TunPacket : std::uint8_t {
  Plain,       // one packet, checksums complete (completed here when the header asked)
  Split,       // a TCP or UDP super-packet: plan filled in, write_segment() each part
  Malformed,   // headers that do not add up
  Unsupported  // an offload we did not ask for (e.g. UFO, IPv4 fragmentation of UDP)
};

// Interprets what the TUN handed over: pkt[0, len) after its vnet header h. For Plain
// packets a pending checksum is completed in place.
TunPacket classify_tun_packet(const VnetHdr& h, std::uint8_t* pkt, std::size_t len, GsoPlan& plan) noexcept;

// Writes segment i of the super-packet pkt (plan from classify_tun_packet) to dst, which
// has room for plan.hdr_len + plan.mss bytes, with IP length, IPv4 id and checksum, and
// TCP sequence number, flags (FIN and PSH on the last segment only, CWR on the first
// only) and checksum, or UDP length and checksum, adjusted. Returns the segment's length.
// With Checksum::Partial the TCP/UDP checksum field gets only the pseudo header's sum
// (what NEEDS_CSUM means), for a receiver that hands the segment to its kernel so.
enum class Checksum : std::uint8_t { Full, Partial };
std::size_t write_segment(const GsoPlan& plan, const std::uint8_t* pkt, unsigned i, std::uint8_t* dst,
                          Checksum sum = Checksum::Full) noexcept;

// For a TCP or UDP packet whose checksum field holds only the pseudo header's sum: the
// NEEDS_CSUM header to write it behind. False when the packet is neither (or its IP
// header does not add up), and then there is no checksum to complete.
bool partial_checksum_hdr(const std::uint8_t* pkt, std::size_t len, VnetHdr& h) noexcept;
// The same packet completed in place, for a TUN without offloads.
void complete_partial_checksum(std::uint8_t* pkt, std::size_t len) noexcept;

// A TCP SYN (or SYN-ACK) in an IPv4 or IPv6 packet of len bytes whose MSS option asks
// for segments that would make packets above `max_packet` bytes: the option lowered to
// max_packet less the IP and TCP headers (40 bytes, 60 for IPv6), the checksum fixed
// (unless `partial`: then it covers the pseudo header only, and stays). Anything else,
// malformed or not, is left alone. True when it changed the packet.
bool clamp_tcp_mss(std::uint8_t* pkt, std::size_t len, std::size_t max_packet, bool partial) noexcept;

// Userspace GRO: a run of received TCP segments of one flow, in order, that one TUN
// write can carry as a super-packet: the first segment's headers (rewritten by
// gro_finish for the whole run) followed by every segment's payload. The segments stay
// where they are (a gather write).
struct GroRun {
  std::uint8_t* first = nullptr;  // the first segment (its headers serve the run)
  std::size_t first_len = 0;
  std::size_t ip_len = 0, hdr_len = 0;
  std::size_t mss = 0;      // the first segment's payload: every segment but the last has it
  std::size_t payload = 0;  // payload bytes in all
  std::uint32_t next_seq = 0;
  unsigned n = 0;
  bool v6 = false;
  bool closed = false;         // a shorter or PSH segment ended it
  bool first_partial = false;  // the first segment's checksum is partial (written alone: NEEDS_CSUM)
};
inline constexpr unsigned kMaxGroSegments = 64;

// Starts a run with a segment; false when it cannot be joined with others (not TCP, IP
// options or fragments, flags other than ACK and PSH, no payload, a checksum that does
// not verify): write it alone. A partial segment (its checksum field holds the pseudo
// header's sum, kDataChecksumPartial) has no checksum to verify: its bytes are as its
// sender's kernel made them, which the AEAD vouches for.
bool gro_start(GroRun& r, std::uint8_t* pkt, std::size_t len, bool partial = false) noexcept;
// Appends the next received segment; false (run unchanged) when it does not continue the
// flow exactly: other addresses, ports, ack, window, options, TTL or TOS, a sequence
// gap, other flags, a longer payload, a checksum that does not verify (unless partial),
// or no room.
bool gro_append(GroRun& r, const std::uint8_t* pkt, std::size_t len, bool partial = false) noexcept;
// For a run of two or more: rewrites the first segment's IP length (and IPv4 header
// checksum), PSH (when the last segment had it) and TCP checksum field (the pseudo
// header's sum, which the kernel completes: NEEDS_CSUM) and returns the
// virtio_net_hdr the write must start with.
VnetHdr gro_finish(GroRun& r) noexcept;

}  // namespace triglav::dp
