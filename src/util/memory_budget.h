// MemoryBudget: a thread-safe bound on bytes held at once, shared by many users.
//
// Users reserve bytes before they hold them and release them after. Two ways to reserve:
//  * TryReserve never waits: it takes the bytes if they fit now, else returns false and
//    the caller does without (e.g. a write that would be held in memory runs the slow way
//    instead);
//  * Reserve waits, in arrival order, until the bytes fit. The NBD server's readers use
//    it: each connection bounds its own requests in flight (TransmissionLimits: 256
//    requests, 64 MiB), but max_connections of them could still ask for 64 GiB together,
//    so the server's budget caps the sum. Requests already admitted never need more, so
//    they always finish and release their bytes (no deadlock).
// A reservation larger than the whole limit is granted when nothing else is reserved, so
// it runs alone rather than never. TryReserve does not overtake callers waiting in
// Reserve.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace skerry {

class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t limit) : limit_(limit) {}

  // Reserves `bytes` if they fit now and nobody is waiting in Reserve; never waits.
  bool TryReserve(uint64_t bytes);
  // Reserves `bytes`, waiting behind earlier waiters until they fit.
  void Reserve(uint64_t bytes);
  // Gives back what a Reserve or a successful TryReserve took.
  void Release(uint64_t bytes);

  uint64_t limit() const { return limit_; }
  uint64_t in_use() const;
  // The most ever held at once, and how often a Reserve had to wait: for tests and logs.
  uint64_t peak() const;
  uint64_t waits() const;

 private:
  bool Fits(uint64_t bytes) const { return used_ == 0 || used_ + bytes <= limit_; }  // REQUIRES: mu_

  const uint64_t limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t used_ = 0;
  uint64_t peak_ = 0;
  uint64_t waits_ = 0;
  // Waiters are served in order: tickets handed out and the one whose turn it is.
  uint64_t next_ticket_ = 0;
  uint64_t serving_ = 0;
};

}  // namespace skerry
