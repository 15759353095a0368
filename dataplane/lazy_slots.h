// N slots of per-sender (or per-worker) state, each made the first time it is asked
// for, so a session or a group holds state only for the senders and workers that exist
// (a peer with 2 workers uses 3 of 16 replay windows). Any thread may ask: the first to
// publish its allocation wins, another frees its own and takes the winner's. What was
// made stays until the LazySlots is destroyed (by the control thread, after every
// worker passed a quiescent point, like the session or group it belongs to).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <new>

namespace triglav::dp {

template <typename T, std::size_t N>
class LazySlots {
 public:
  LazySlots() = default;
  LazySlots(const LazySlots&) = delete;
  LazySlots& operator=(const LazySlots&) = delete;
  ~LazySlots() {
    for (auto& s : slots_) delete s.load(std::memory_order_relaxed);
  }

  // Slot i's state, made now if it was not; null only when no memory could be had.
  T* get(std::size_t i) noexcept {
    T* p = slots_[i].load(std::memory_order_acquire);
    if (p != nullptr) return p;
    T* made = new (std::nothrow) T();
    if (made == nullptr) return nullptr;
    if (slots_[i].compare_exchange_strong(p, made, std::memory_order_acq_rel, std::memory_order_acquire)) return made;
    delete made;  // another thread's came first
    return p;
  }
  // Slot i's state if it was made, else null.
  const T* find(std::size_t i) const noexcept { return slots_[i].load(std::memory_order_acquire); }
  T* find(std::size_t i) noexcept { return slots_[i].load(std::memory_order_acquire); }
  // fn(state) for each slot made.
  template <typename F>
  void for_each(F&& fn) const {
    for (const auto& s : slots_)
      if (const T* p = s.load(std::memory_order_acquire)) fn(*p);
  }
  // How many slots were made, and the bytes they hold.
  std::size_t made() const noexcept {
    std::size_t n = 0;
    for (const auto& s : slots_) n += s.load(std::memory_order_acquire) != nullptr;
    return n;
  }
  std::size_t bytes() const noexcept { return made() * sizeof(T); }

 private:
  std::array<std::atomic<T*>, N> slots_{};
};

}  // namespace triglav::dp
