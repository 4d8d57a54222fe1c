#include "util/memory_budget.h"

#include <algorithm>

namespace skerry {

bool MemoryBudget::TryReserve(uint64_t bytes) {
  std::lock_guard lock(mu_);
  if (next_ticket_ != serving_ || !Fits(bytes)) return false;  // waiters first
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  return true;
}

void MemoryBudget::Reserve(uint64_t bytes) {
  std::unique_lock lock(mu_);
  uint64_t ticket = next_ticket_++;
  if (ticket != serving_ || !Fits(bytes)) {
    waits_++;
    cv_.wait(lock, [&] { return ticket == serving_ && Fits(bytes); });
  }
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  serving_++;
  // The next in line may fit too.
  if (next_ticket_ != serving_) cv_.notify_all();
}

void MemoryBudget::Release(uint64_t bytes) {
  std::lock_guard lock(mu_);
  used_ -= std::min(bytes, used_);
  // Notified under the lock: the releaser may be a store's thread whose request was the
  // last thing keeping the server (and this budget) alive.
  if (next_ticket_ != serving_) cv_.notify_all();
}

uint64_t MemoryBudget::in_use() const {
  std::lock_guard lock(mu_);
  return used_;
}

uint64_t MemoryBudget::peak() const {
  std::lock_guard lock(mu_);
  return peak_;
}

uint64_t MemoryBudget::waits() const {
  std::lock_guard lock(mu_);
  return waits_;
}

}  // namespace skerry
