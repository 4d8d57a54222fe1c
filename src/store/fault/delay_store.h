// DelayStore: a store decorator that sleeps before chosen calls (URI
// "delay:ms=N[&jitter=N][&ops=...][&seed=N]+INNER"; docs/faults.md), to test the layers
// above against a slow store: timeouts, queueing, many requests in flight.
//
// The sleep happens on the caller's thread before the call is passed on, so the store
// reports native_async = false. With async=N, data-path calls (read, write, zero, copy,
// sync) instead return at once and run, sleep included, on one of N threads of the store,
// which then complete them: a natively asynchronous store (like RADOS) without a cluster,
// for testing the asynchronous paths above. Control-path calls still sleep inline.
//
// Thread-safety: all methods may be called concurrently (the jitter PRNG has a mutex).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/fault/forwarding_store.h"
#include "store/fault/store_ops.h"

namespace skerry {

struct DelayOptions {
  uint64_t ms = 0;      // every matching call sleeps this long,
  uint64_t jitter = 0;  // plus a uniform 0..jitter ms more
  uint32_t ops = kAllStoreOps;
  uint64_t seed = 1;    // of the jitter PRNG
  uint64_t async = 0;   // completion threads for the data path; 0 = run on the caller's
};

// Parses "ms=N&jitter=N&ops=...&seed=N" (ms required). InvalidArgument naming the bad part.
Result<DelayOptions> ParseDelayOptions(std::string_view spec);

class DelayStore final : public ForwardingStore {
 public:
  DelayStore(std::shared_ptr<ObjectStore> inner, DelayOptions options, std::string spec = "");
  ~DelayStore() override;  // runs the queued calls, then joins the threads

  StoreCapabilities capabilities() const override;
  std::string uri() const override;

  void Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) override;
  void Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh,
             Done done) override;
  void Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) override;
  void Copy(const std::string& src, const std::string& dst, Done done) override;
  void Sync(std::vector<std::string> names, Done done) override;

  Result<std::string> Get(const std::string& name) override;
  Status Put(const std::string& name, std::string_view data) override;
  Status Create(const std::string& name, std::string_view data) override;
  Status CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) override;
  Status Truncate(const std::string& name, uint64_t size) override;
  Result<ObjectInfo> Stat(const std::string& name) override;
  Status Delete(const std::string& name) override;
  Result<std::vector<std::string>> List(std::string_view prefix) override;

  Status Lock(const std::string& name, const std::string& owner, int64_t lease_ms) override;
  Status Unlock(const std::string& name, const std::string& owner) override;
  Result<LockInfo> GetLock(const std::string& name) override;
  Status BreakLock(const std::string& name, const std::string& owner, bool fence) override;

 private:
  void Pause(StoreOp op);
  // Runs `call` after the pause for `op`: inline, or queued for the async threads.
  void Run(StoreOp op, std::function<void()> call);
  void AsyncLoop();

  const DelayOptions options_;
  const std::string spec_;
  std::mutex mu_;
  std::mt19937_64 rng_;  // GUARDED_BY(mu_)

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(queue_mu_)
  bool stopping_ = false;                    // GUARDED_BY(queue_mu_)
  std::vector<std::thread> threads_;
};

}  // namespace skerry
