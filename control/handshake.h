// Building and answering handshake packets: the Noise NK messages wrapped in our
// header (docs/PROTOCOL.md, "Handshake"). Pure logic over byte buffers, used by the
// control thread; tests drive both sides in memory.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "crypto/client_key.h"
#include "crypto/mac.h"
#include "crypto/noise.h"
#include "dataplane/wire.h"
#include "io/endpoint.h"

namespace triglav::ctl {

inline constexpr char kPrologue[] = "triglav/1";

// Client side of one handshake on one uplink.
class ClientHandshake {
 public:
  // With a client key the handshake is NKpsk2 and the payload names the key (its
  // key_id is filled in here); without one, NK.
  // A cookie from the server's cookie reply adds mac2 (control/cookie.h).
  ClientHandshake(const crypto::PublicKey& server_key, const dp::InitPayload& payload,
                  const crypto::ClientKey* client_key = nullptr, const crypto::Mac* cookie = nullptr);

  // The initiation packet (kInitLen bytes).
  const std::array<std::uint8_t, dp::kInitLen>& initiation() const noexcept { return init_; }
  std::uint32_t sender_index() const noexcept { return sender_index_; }
  // The initiation's mac1 (a cookie reply is bound to it) and whether it carries mac2.
  std::span<const std::uint8_t, crypto::kMacLen> mac1() const noexcept {
    return std::span<const std::uint8_t, crypto::kMacLen>(init_.data() + dp::kInitLen - dp::kInitMacsLen,
                                                          crypto::kMacLen);
  }
  bool has_mac2() const noexcept { return has_mac2_; }

  struct Established {
    crypto::TransportKeys keys;
    dp::ResponsePayload response;
  };
  // Consumes a response packet. nullopt if it is not a valid answer to our initiation.
  [[nodiscard]] std::optional<Established> finish(std::span<const std::uint8_t> pkt);

 private:
  crypto::NoiseNk noise_;
  std::uint32_t sender_index_;
  bool has_mac2_ = false;
  std::uint8_t ciphers_ = 0;  // what the initiation offered
  std::array<std::uint8_t, dp::kInitLen> init_{};
};

// Server side: answers one initiation.
struct ServerHandshakeResult {
  std::array<std::uint8_t, dp::kResponseLen> response{};
  crypto::TransportKeys keys;
  dp::InitPayload init;
  dp::ResponsePayload answer;  // what the response carries
  std::uint8_t uplink = 0;
};

enum class HandshakeReject : std::uint8_t {
  Malformed,
  Decrypt,
  BadVersion,
  Refused,
  ClientKeyRequired,  // the server authorises clients; the initiation is plain NK
  ClientKeyRejected,  // the key id is unknown, or this server takes no client keys
};

// The server's authorised client keys: the psk for a key id, or null. An empty function
// is a server open to any client (NK only).
using FindClientKey = std::function<const crypto::SecretKey*(const crypto::ClientKeyId&)>;

// Fills the response payload once the initiation has authenticated (so the server can
// pick an index and check the client's address); false refuses the client.
using MakeResponse = std::function<bool(const dp::InitPayload&, dp::ResponsePayload&)>;

// The digest of an endpoint's address that the response carries (BLAKE2b, 8 bytes, over
// the family and the address bytes).
std::array<std::uint8_t, dp::kAddressDigestLen> address_digest(const io::Endpoint& e);

// Answers one initiation packet. nullopt with reject set when it is refused.
std::optional<ServerHandshakeResult> answer_initiation(
    std::span<const std::uint8_t, crypto::kKeyLen> static_private,
    std::span<const std::uint8_t> pkt, HandshakeReject& reject, const MakeResponse& make_response,
    const FindClientKey& find_key = {});

// An unauthenticated Error packet addressed to a client's sender index.
std::array<std::uint8_t, dp::kErrorLen> make_error(std::uint32_t receiver, dp::ErrorCode code);

}  // namespace triglav::ctl
