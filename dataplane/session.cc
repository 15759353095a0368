#include "dataplane/session.h"

namespace triglav::dp {

std::size_t seal_transport(Session& s, unsigned sender, PacketType type, std::uint8_t* buf,
                           std::size_t body, std::uint8_t aux, std::uint8_t flags) noexcept {
  Header h;
  h.type = type;
  h.aux = aux;
  h.flags = static_cast<std::uint8_t>(flag::kEncrypted | flags);
  h.uplink = s.uplink;
  h.receiver = s.remote_index;
  SenderState* t = s.tx.get(sender);
  if (t == nullptr) return 0;  // no memory for its state: nothing sealed
  auto& next = t->next_counter;
  const std::uint64_t n = next.load(std::memory_order_relaxed);
  if (n >= kRejectAfterMessages) return 0;  // never reuse a nonce
  next.store(n + 1, std::memory_order_relaxed);
  h.counter = std::uint64_t{sender} << kSenderShift | n;
  encode_header(h, buf);
  if (!s.tx_key.seal(h.counter, {buf, kHeaderLen}, buf + kHeaderLen, body)) return 0;
  return kHeaderLen + body + kTagLen;
}

std::uint64_t rx_expected(const Session& s) noexcept {
  const std::uint32_t senders = s.rx_senders.load(std::memory_order_relaxed);
  std::uint64_t n = 0;
  for (unsigned i = 0; i < kMaxSenders; ++i)
    if (const ReplayWindow* w = s.rx_windows.find(i); w != nullptr && (senders >> i & 1))
      n += (w->top() & kCounterMask) + 1;
  return n;
}

bool keys_used_up(const Session& s, unsigned sender) noexcept {
  const SenderState* t = s.tx.find(sender);
  return t != nullptr && t->next_counter.load(std::memory_order_relaxed) >= kRejectAfterMessages;
}

}  // namespace triglav::dp
