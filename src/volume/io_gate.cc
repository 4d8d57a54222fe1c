#include "volume/io_gate.h"

namespace skerry::volume {

void IoGate::EnterShared() {
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    while (!(s & kClosed)) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire)) return;
    }
    // Closed: wait until the exclusive holder leaves, then try again.
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !(state_.load(std::memory_order_acquire) & kClosed); });
  }
}

void IoGate::LeaveShared() {
  uint64_t s = state_.load(std::memory_order_relaxed);
  while (!(s & kClosed)) {
    if (state_.compare_exchange_weak(s, s - 1, std::memory_order_release)) return;
  }
  // An exclusive holder waits for us. Leave under the mutex it checks under, so it cannot
  // see the count reach zero (and perhaps destroy the gate) before we are done with it.
  std::lock_guard lock(mu_);
  state_.fetch_sub(1, std::memory_order_release);
  cv_.notify_all();
}

void IoGate::EnterExclusive() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !exclusive_; });
  exclusive_ = true;
  state_.fetch_or(kClosed, std::memory_order_acq_rel);
  cv_.wait(lock, [&] { return state_.load(std::memory_order_acquire) == kClosed; });
}

void IoGate::LeaveExclusive() {
  std::lock_guard lock(mu_);
  exclusive_ = false;
  state_.fetch_and(~kClosed, std::memory_order_release);
  cv_.notify_all();
}

}  // namespace skerry::volume
