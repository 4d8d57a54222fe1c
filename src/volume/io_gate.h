// IoGate: lets I/O of an open volume in, or holds it out while a management operation
// (snapshot, resize, rollback, close) runs alone.
//
// Like a shared mutex, with one difference that is the reason it exists: a shared entry
// may be left from another thread. An asynchronous read enters on the thread that starts
// it and leaves on the store thread that completes it (std::shared_mutex forbids that).
//
// Shared entries cost one compare-and-swap each way while no exclusive holder is there.
// An exclusive entry closes the gate to new shared entries at once (they wait), then
// waits for those inside to leave: "in-flight I/O drained, new I/O held".
//
// Thread-safety: all methods may be called from any thread. The gate must outlive every
// Leave, and LeaveShared touches the gate for the last time before it returns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace skerry::volume {

class IoGate {
 public:
  void EnterShared();
  void LeaveShared();
  void EnterExclusive();
  void LeaveExclusive();

 private:
  // The high bit: an exclusive holder is in or waiting (set and cleared under mu_).
  // The rest: the number of shared holders inside.
  static constexpr uint64_t kClosed = uint64_t{1} << 63;

  std::atomic<uint64_t> state_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool exclusive_ = false;  // GUARDED_BY(mu_): one exclusive holder at a time
};

// Scoped holders.
class SharedGate {
 public:
  explicit SharedGate(IoGate& gate) : gate_(gate) { gate_.EnterShared(); }
  ~SharedGate() { gate_.LeaveShared(); }
  SharedGate(const SharedGate&) = delete;
  SharedGate& operator=(const SharedGate&) = delete;

 private:
  IoGate& gate_;
};

class ExclusiveGate {
 public:
  explicit ExclusiveGate(IoGate& gate) : gate_(gate) { gate_.EnterExclusive(); }
  ~ExclusiveGate() { gate_.LeaveExclusive(); }
  ExclusiveGate(const ExclusiveGate&) = delete;
  ExclusiveGate& operator=(const ExclusiveGate&) = delete;

 private:
  IoGate& gate_;
};

}  // namespace skerry::volume
