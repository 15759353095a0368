#include "dataplane/socket_filter.h"

#include "dataplane/wire.h"

namespace triglav::dp {

std::vector<sock_filter> server_socket_filter() {
  // Offsets are from the UDP header (8 bytes): the payload starts at 8.
  constexpr unsigned kUdp = 8;
  constexpr unsigned kFirst = 0x10 | static_cast<unsigned>(PacketType::Data);     // version 1, type 1
  constexpr unsigned kLast = 0x10 | static_cast<unsigned>(PacketType::Close);     // version 1, type 8
  constexpr unsigned kHandshake = 0x10 | static_cast<unsigned>(PacketType::Handshake);
  enum : unsigned char { kAccept = 14, kDrop = 15 };  // instruction numbers below
  // Jump offsets are relative to the next instruction: to reach k from i, jump k - i - 1.
  auto to = [](unsigned from, unsigned target) { return static_cast<unsigned char>(target - from - 1); };
  return {
      /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
      /* 1 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, kUdp + kHeaderLen + kTagLen, 0, to(1, kDrop)),
      /* 2 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),  // X = length
      /* 3 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, kUdp),  // version | type
      /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kHandshake, 0, to(4, 12)),
      /* 5 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, kUdp + 3),  // aux: the message number
      // A path-MTU probe: any length (the worker checks it and its MAC).
      /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kHandshakeProbe, to(6, kAccept), 0),
      // Otherwise whole initiations only. With UDP GRO the filter sees several
      // coalesced ones at once, so a multiple of kInitLen (the worker checks each).
      /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kHandshakeInit, 0, to(7, kDrop)),
      /* 8 */ BPF_STMT(BPF_MISC | BPF_TXA, 0),
      /* 9 */ BPF_STMT(BPF_ALU | BPF_SUB | BPF_K, kUdp),
      /* 10 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, kInitLen),
      /* 11 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, to(11, kAccept), to(11, kDrop)),
      /* 12 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, kFirst, 0, to(12, kDrop)),
      /* 13 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, kLast, to(13, kDrop), to(13, kAccept)),
      /* 14 */ BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),  // accept, whole
      /* 15 */ BPF_STMT(BPF_RET | BPF_K, 0),            // drop
  };
}

std::vector<sock_filter> steering_program(unsigned workers) {
  constexpr unsigned kHandshake = static_cast<unsigned>(PacketType::Handshake);
  constexpr unsigned kError = static_cast<unsigned>(PacketType::Error);
  enum : unsigned char { kHash = 7 };
  auto to = [](unsigned from, unsigned target) { return static_cast<unsigned char>(target - from - 1); };
  return {
      /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),  // version | type
      /* 1 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0f),
      /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kHandshake, to(2, kHash), 0),
      /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kError, to(3, kHash), 0),
      /* 4 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 4),  // the receiver index's low byte (little-endian)
      /* 5 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, workers == 0 ? 1 : workers),
      /* 6 */ BPF_STMT(BPF_RET | BPF_A, 0),
      /* 7 */ BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),  // past the group: the kernel's hash
  };
}

}  // namespace triglav::dp
