#include "control/handshake.h"

#include "dataplane/handshake_guard.h"

#include <netinet/in.h>

#include <cstring>

namespace triglav::ctl {
namespace {

std::span<const std::uint8_t> prologue() {
  return {reinterpret_cast<const std::uint8_t*>(kPrologue), sizeof kPrologue - 1};
}

}  // namespace

ClientHandshake::ClientHandshake(const crypto::PublicKey& server_key,
                                 const dp::InitPayload& payload, const crypto::ClientKey* client_key,
                                 const crypto::Mac* cookie)
    : noise_(client_key != nullptr ? crypto::NoiseNk::initiator_psk(server_key, prologue(), client_key->psk.span())
                                   : crypto::NoiseNk::initiator(server_key, prologue())),
      sender_index_(payload.sender_index),
      ciphers_(payload.ciphers) {
  dp::Header h;
  h.type = dp::PacketType::Handshake;
  h.flags = client_key != nullptr ? dp::kHandshakeClientKey : 0;
  h.uplink = payload.uplink;
  h.aux = dp::kHandshakeInit;
  h.receiver = 0;
  h.counter = payload.sender_index;
  dp::encode_header(h, init_.data());
  std::uint8_t body[dp::kInitPayloadLen];
  dp::InitPayload p = payload;
  p.key_id = client_key != nullptr ? client_key->id : crypto::ClientKeyId{};
  dp::encode_init_payload(p, body);
  // write_message only fails on a too-small buffer or a low-order key; the server key
  // came from an AuthKey, and a low-order one simply never completes.
  [[maybe_unused]] auto n = noise_.write_message(
      body, std::span<std::uint8_t>(init_.data() + dp::kHeaderLen, dp::kInitNoiseLen));
  dp::stamp_initiation(init_, dp::HandshakeMacKeys::for_server(server_key).mac1, cookie);
  has_mac2_ = cookie != nullptr;
}

std::optional<ClientHandshake::Established> ClientHandshake::finish(
    std::span<const std::uint8_t> pkt) {
  dp::Header h;
  if (pkt.size() != dp::kResponseLen || dp::decode_header(pkt, h) != dp::HeaderError::Ok ||
      h.type != dp::PacketType::Handshake || h.aux != dp::kHandshakeResponse ||
      h.receiver != sender_index_) {
    return std::nullopt;
  }
  std::uint8_t body[dp::kResponsePayloadLen];
  auto n = noise_.read_message(pkt.subspan(dp::kHeaderLen), body);
  Established e;
  if (!n || *n != dp::kResponsePayloadLen ||
      !dp::decode_response_payload({body, *n}, e.response) ||
      e.response.sender_index != static_cast<std::uint32_t>(h.counter) ||
      (e.response.cipher == 1 && (ciphers_ & dp::kOfferAes256Gcm) == 0) ||  // a cipher we never offered
      (e.response.checksum_partial && (ciphers_ & dp::kOfferChecksumPartial) == 0) ||
      (e.response.striped && (ciphers_ & dp::kOfferStriped) == 0) ||
      (e.response.fragments && (ciphers_ & dp::kOfferFragments) == 0) ||
      (e.response.repair && (ciphers_ & dp::kOfferRepair) == 0)) {
    return std::nullopt;
  }
  e.keys = noise_.split();
  return e;
}

std::optional<ServerHandshakeResult> answer_initiation(
    std::span<const std::uint8_t, crypto::kKeyLen> static_private,
    std::span<const std::uint8_t> pkt, HandshakeReject& reject, const MakeResponse& make_response,
    const FindClientKey& find_key) {
  dp::Header h;
  if (pkt.size() != dp::kInitLen || dp::decode_header(pkt, h) != dp::HeaderError::Ok ||
      h.type != dp::PacketType::Handshake || h.aux != dp::kHandshakeInit || h.receiver != 0 ||
      (h.flags & ~dp::kHandshakeClientKey) != 0) {
    reject = HandshakeReject::Malformed;
    return std::nullopt;
  }
  const bool keyed = (h.flags & dp::kHandshakeClientKey) != 0;
  // Cheap refusals before any DH: the mode does not match the server's.
  if (!keyed && find_key) {
    reject = HandshakeReject::ClientKeyRequired;
    return std::nullopt;
  }
  if (keyed && !find_key) {
    reject = HandshakeReject::ClientKeyRejected;
    return std::nullopt;
  }
  auto noise = keyed ? crypto::NoiseNk::responder_psk(static_private, prologue())
                     : crypto::NoiseNk::responder(static_private, prologue());
  std::uint8_t body[dp::kInitPayloadLen];
  auto n = noise.read_message(pkt.subspan(dp::kHeaderLen, dp::kInitNoiseLen), body);
  if (!n) {
    reject = HandshakeReject::Decrypt;
    return std::nullopt;
  }
  ServerHandshakeResult r;
  if (!dp::decode_init_payload({body, *n}, r.init) ||
      r.init.sender_index != static_cast<std::uint32_t>(h.counter)) {
    reject = HandshakeReject::Malformed;
    return std::nullopt;
  }
  if (r.init.version != dp::kProtocolVersion) {
    reject = HandshakeReject::BadVersion;
    return std::nullopt;
  }
  // The header's uplink id is not authenticated (anyone holding the AuthKey can redo
  // mac1): only the encrypted copy counts, and the two must agree.
  if (r.init.uplink != h.uplink) {
    reject = HandshakeReject::Malformed;
    return std::nullopt;
  }
  if (keyed) {
    const crypto::SecretKey* psk = find_key(r.init.key_id);
    if (psk == nullptr) {
      reject = HandshakeReject::ClientKeyRejected;
      return std::nullopt;
    }
    noise.set_psk(psk->span());
  }
  r.uplink = h.uplink;
  dp::ResponsePayload rp;
  if (!make_response(r.init, rp)) {
    reject = HandshakeReject::Refused;
    return std::nullopt;
  }
  dp::Header out;
  out.type = dp::PacketType::Handshake;
  out.uplink = h.uplink;
  out.aux = dp::kHandshakeResponse;
  out.receiver = r.init.sender_index;
  out.counter = rp.sender_index;
  dp::encode_header(out, r.response.data());
  std::uint8_t rbody[dp::kResponsePayloadLen];
  dp::encode_response_payload(rp, rbody);
  auto w = noise.write_message(rbody, std::span<std::uint8_t>(r.response.data() + dp::kHeaderLen,
                                                             r.response.size() - dp::kHeaderLen));
  if (!w) {
    reject = HandshakeReject::Decrypt;
    return std::nullopt;
  }
  r.keys = noise.split();
  r.answer = rp;
  return r;
}

std::array<std::uint8_t, dp::kAddressDigestLen> address_digest(const io::Endpoint& e) {
  const auto in = dp::address_bytes(e, false);
  std::array<std::uint8_t, crypto::kHashLen> h{};
  crypto::blake2b(h, std::span<const std::uint8_t>(in.data(), 1 + 16));  // family and address
  std::array<std::uint8_t, dp::kAddressDigestLen> out{};
  std::memcpy(out.data(), h.data(), out.size());
  return out;
}

std::array<std::uint8_t, dp::kErrorLen> make_error(std::uint32_t receiver, dp::ErrorCode code) {
  std::array<std::uint8_t, dp::kErrorLen> out{};
  dp::Header h;
  h.type = dp::PacketType::Error;
  h.aux = static_cast<std::uint8_t>(code);
  h.receiver = receiver;
  dp::encode_header(h, out.data());
  return out;
}

}  // namespace triglav::ctl
