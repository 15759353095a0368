// The framing of the TCP fallback (docs/PROTOCOL.md, "Over TCP"): each datagram preceded
// by its length, 2 bytes big-endian, 1 to max_frame. FrameAssembler takes the bytes of a
// connection as reads deliver them and hands out whole datagrams. It keeps only the part
// of a frame that a read cut off, and only the bytes that came: a length alone reserves
// nothing. No I/O, no threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace triglav::io {

class FrameAssembler {
 public:
  explicit FrameAssembler(std::size_t max_frame) : max_frame_(max_frame) {}

  // Calls on_frame(data, len) for each whole datagram in order. False on a length of 0
  // or over max_frame: the stream is broken from there on (error() says why) and the
  // caller closes the connection; nothing after the bad length is handed out.
  bool feed(const std::uint8_t* p, std::size_t n, const std::function<void(const std::uint8_t*, std::size_t)>& on_frame);

  const std::string& error() const noexcept { return error_; }
  std::size_t held() const noexcept { return partial_.capacity(); }  // bytes kept for a cut frame

 private:
  bool length_ok(std::size_t len);

  std::size_t max_frame_;
  std::vector<std::uint8_t> partial_;  // a frame begun by an earlier read (empty: none)
  std::string error_;
};

}  // namespace triglav::io
