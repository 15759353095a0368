// Handshake processing in both roles. Input byte 0 picks the case; the rest is either a
// raw packet or an XOR mask over a valid message (so mutations stay near the deep
// paths): server answering an initiation (open, or with a client list), client
// finishing on a response.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "control/handshake.h"
#include "crypto/aead.h"

using namespace triglav;

namespace {

struct World {
  crypto::KeyPair server = crypto::KeyPair::from_private(std::span<const std::uint8_t, 32>(seed(3)));
  crypto::ClientKey alice = crypto::ClientKey::from_secret(std::span<const std::uint8_t, 32>(seed(5)));
  static std::array<std::uint8_t, 32> seed(std::uint8_t v) {
    std::array<std::uint8_t, 32> a{};
    a.fill(v);
    return a;
  }
  dp::InitPayload payload() const {
    dp::InitPayload p;
    p.uplink = 1;
    p.sender_index = 0x1234567;
    p.inner_ipv4_be = 0x0255000a;
    p.timestamp_ns = 77;
    p.client_id = 99;
    return p;
  }
};

ctl::MakeResponse accept() {
  return [](const dp::InitPayload&, dp::ResponsePayload& out) {
    out.sender_index = 5;
    out.prefix_len = 24;
    out.mtu = 1420;
    return true;
  };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool ok = crypto::init();
  if (!ok || size < 1) return 0;
  static World w;
  const std::uint8_t mode = data[0] % 6;
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  const ctl::FindClientKey find = [](const crypto::ClientKeyId& id) -> const crypto::SecretKey* {
    return id == w.alice.id ? &w.alice.psk : nullptr;
  };
  ctl::HandshakeReject why{};
  if (mode <= 3) {  // the server side
    const bool keyed = mode % 2 == 1;
    std::vector<std::uint8_t> pkt(rest.begin(), rest.end());
    if (mode >= 2) {  // mask over a valid initiation
      ctl::ClientHandshake c(w.server.pub, w.payload(), keyed ? &w.alice : nullptr);
      pkt.assign(c.initiation().begin(), c.initiation().end());
      for (std::size_t i = 0; i < rest.size() && i < pkt.size(); ++i) pkt[i] ^= rest[i];
    }
    auto r = ctl::answer_initiation(w.server.priv.span(), pkt, why, accept(), keyed ? find : ctl::FindClientKey{});
    if (r && r->response.size() > pkt.size()) __builtin_trap();  // never amplify
    return 0;
  }
  // The client side: a response, raw or a mask over a valid one.
  ctl::ClientHandshake c(w.server.pub, w.payload(), mode == 5 ? &w.alice : nullptr);
  std::vector<std::uint8_t> pkt(rest.begin(), rest.end());
  if (mode == 5) {
    auto r = ctl::answer_initiation(w.server.priv.span(), c.initiation(), why, accept(), find);
    if (!r) __builtin_trap();
    pkt.assign(r->response.begin(), r->response.end());
    for (std::size_t i = 0; i < rest.size() && i < pkt.size(); ++i) pkt[i] ^= rest[i];
  }
  (void)c.finish(pkt);
  return 0;
}
