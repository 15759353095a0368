// AuthKey, client key and base64url decoding: any text is refused with a message or
// decoded into something that encodes back to the same key.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/aead.h"
#include "crypto/authkey.h"
#include "crypto/client_key.h"

using namespace triglav;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool ok = crypto::init();
  if (!ok) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  crypto::AuthKey ak;
  std::string err;
  if (crypto::decode_authkey(text, ak, err)) {
    crypto::AuthKey back;
    if (!crypto::decode_authkey(crypto::encode_authkey(ak), back, err) || !(back == ak)) __builtin_trap();
  } else if (err.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  crypto::ClientKey ck;
  err.clear();
  if (crypto::decode_client_key(text, ck, err)) {
    crypto::ClientKey back;
    if (!crypto::decode_client_key(crypto::encode_client_key(ck), back, err) || back.id != ck.id) __builtin_trap();
  } else if (err.empty()) {
    __builtin_trap();
  }
  std::vector<std::uint8_t> raw;
  if (crypto::from_base64url(text, raw) && crypto::to_base64url(raw.data(), raw.size()).size() > size + 3)
    __builtin_trap();
  return 0;
}
