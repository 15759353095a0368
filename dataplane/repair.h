// Loss repair for striped flows: what a worker keeps of the packets it striped, so that
// it (or another worker) can send one again when the receiver asks (a Nack: the peer's
// reorder buffer declared a gap lost, dataplane/reorder.h).
//
// A RepairStore belongs to one worker, which alone writes it: each striped packet's inner
// bytes, its flow sequence number and its checksum state, under (the client's Group
// serial, the packet's sequence number). Sequence numbers are per (client, worker), so the
// key names one packet of one client. Entries live in a fixed table of 2-way buckets (the
// older of the two is replaced), so what is kept is about the last `entries` packets,
// whatever the clients; nothing is allocated after construction, and pages are taken
// only as entries are first written.
//
// Any worker reads it: a Nack arrives at the worker its session is steered to, not
// necessarily the one that sent the packet. Each entry is a sequence lock: the writer
// makes its version odd, writes, and makes it even again; a reader copies and keeps the
// copy only if the version was even and unchanged. Every byte is read and written
// through 8-byte relaxed atomics, so a torn read is discarded rather than a data race.
// An entry is handed out once (take: the highest version taken only grows): a hostile
// peer asking again gets nothing more than one copy of what was sent to it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace triglav::dp {

class RepairStore {
 public:
  static constexpr std::int64_t kMaxAgeNs = 2'000'000'000;  // older entries are not sent again

  // entries: rounded up to a power of two (at least 2); max_bytes: the largest inner
  // packet kept (a bigger one is not kept).
  RepairStore(std::size_t entries, std::size_t max_bytes);

  // Owner only.
  void put(std::uint64_t group, std::uint32_t seq, std::uint32_t flow_seq, bool partial, const std::uint8_t* data,
           std::size_t len, std::int64_t now_ns) noexcept;

  struct Found {
    std::uint32_t flow_seq = 0;
    std::uint32_t len = 0;
    bool partial = false;
  };
  // Any thread: copies the packet (group, seq) into out (room bytes) if it is kept, not
  // older than kMaxAgeNs and not taken before; false otherwise.
  bool take(std::uint64_t group, std::uint32_t seq, std::int64_t now_ns, std::uint8_t* out, std::size_t room,
            Found& found) noexcept;

  std::size_t max_bytes() const noexcept { return max_bytes_; }

 private:
  // Per entry: the version, whether it was taken (the version it was taken at), then the
  // fields and the bytes as 8-byte words.
  static constexpr std::size_t kVersion = 0, kTaken = 1, kGroup = 2, kSeqs = 3, kMeta = 4, kStamp = 5, kData = 6;
  std::uint64_t* entry(std::size_t i) noexcept { return words_.get() + i * stride_; }
  std::size_t bucket(std::uint64_t group, std::uint32_t seq) const noexcept;

  struct Free {
    void operator()(void* p) const noexcept;
  };
  std::size_t mask_ = 0;    // buckets - 1
  std::size_t stride_ = 0;  // words per entry
  std::size_t max_bytes_ = 0;
  std::unique_ptr<std::uint64_t[], Free> words_;
};

// One store per worker, made before the workers start; worker w writes stores[w].
struct RepairStores {
  RepairStores(unsigned workers, std::size_t entries, std::size_t max_bytes);
  std::vector<std::unique_ptr<RepairStore>> stores;
};

}  // namespace triglav::dp
