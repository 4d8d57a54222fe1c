// MemoryBudget: a bound on bytes held at once by many holders, e.g. all connections of an
// NBD server holding requests in flight, or every volume of a process holding writes for
// deferred copy-ups.
//
// The NBD server: each connection already bounds its own (TransmissionLimits: 256 requests, 64 MiB), but
// max_connections of them could still ask for 64 GiB together. The server's budget caps
// the sum: a connection's reader that finds it spent waits, in arrival order, until
// other requests complete; requests already admitted never need more, so they always
// finish and give their bytes back (no deadlock). A request larger than the whole
// budget is admitted when nothing else holds any, so it runs alone rather than never.
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

  // Takes `bytes` if they fit now and nobody is waiting before us.
  bool TryTake(uint64_t bytes);
  // Takes `bytes`, waiting behind earlier waiters until they fit.
  void Take(uint64_t bytes);
  // Gives back what a Take or a successful TryTake took.
  void Give(uint64_t bytes);

  uint64_t limit() const { return limit_; }
  uint64_t in_use() const;
  // The most ever held at once, and how often a reader had to wait: for tests and logs.
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
