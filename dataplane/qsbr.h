// Freeing what workers may still read, without locks: the control thread retires an
// object, and it is freed once every worker has passed a quiescent point (between two
// batches) or gone offline (asleep on its ring) since.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace triglav::dp {

// Quiescent-state based reclamation for N workers and one reclaiming thread.
class Qsbr {
 public:
  explicit Qsbr(unsigned workers) : slots_(workers) {}
  // Frees whatever is still retired: by then no worker may run.
  ~Qsbr() { drain(); }
  Qsbr(const Qsbr&) = delete;
  Qsbr& operator=(const Qsbr&) = delete;

  // Worker w: call online() after waking, offline() before blocking, and quiescent()
  // between batches. While offline or between batches it holds no snapshot pointer.
  void online(unsigned w) noexcept { slots_[w].seen.store(global_.load(), std::memory_order_seq_cst); }
  void quiescent(unsigned w) noexcept { online(w); }
  void offline(unsigned w) noexcept { slots_[w].seen.store(0, std::memory_order_release); }

  // Control thread: frees `what` once no worker can still see it. Retiring only queues
  // it: the object may still be in the published snapshot, and a worker may load that
  // snapshot after any quiescent point until the snapshot without it is published. So
  // commit() (which SnapshotHolder::publish calls after the swap) starts its grace
  // period; nothing retired is freed before the next commit.
  void retire(std::function<void()> what);
  void commit();
  // Control thread: runs deleters that are safe now. Returns how many remain.
  std::size_t reclaim();
  // Control thread, after workers stopped: runs every deleter.
  void drain();

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> seen{0};  // 0 = offline
  };
  std::atomic<std::uint64_t> global_{1};
  std::vector<Slot> slots_;
  std::vector<std::function<void()>> pending_;  // retired, no grace period started yet
  std::vector<std::pair<std::uint64_t, std::function<void()>>> retired_;
};

}  // namespace triglav::dp
