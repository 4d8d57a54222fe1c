// FaultStore: a store decorator that makes chosen calls fail, for testing the layers above
// through their real code path (URI "fault:RULES+INNER"; grammar in docs/faults.md).
//
// Each rule names an error (EIO, ENOSPC, ETIMEDOUT), the operation classes it applies to,
// and when it fires: while a trigger file exists, and/or at a rate drawn from a seeded
// PRNG. Rules are tried in order; the first that fires decides. A failed call never
// reaches the inner store (nothing of it is applied) and its `done` runs inline. The
// error is the Status a real store would return, so callers see the same code and errno:
// EIO -> IOError, ENOSPC -> NoSpace, ETIMEDOUT -> TimedOut (after the rule's delay).
//
// Thread-safety: all methods may be called concurrently; each rule's PRNG has its own
// mutex (draws from several threads are then ordered by the scheduler, not the seed).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/fault/forwarding_store.h"
#include "store/fault/store_ops.h"

namespace skerry {

enum class FaultError { kEIO, kENOSPC, kETIMEDOUT };

struct FaultRule {
  FaultError error = FaultError::kEIO;
  uint32_t ops = kAllStoreOps;  // StoreOp bits
  std::optional<double> rate;   // fire with this probability; unset: every matching call
  std::string trigger;          // fire only while this file exists; empty: no condition
  uint64_t seed = 1;            // of the rate's PRNG
  uint64_t delay_ms = 0;        // sleep before failing (a timeout takes time)
  std::string prefix;           // only calls on objects whose name starts with this ("v.<id>.": one volume)
};

// Parses "RULE[,RULE...]" where RULE is KEY=VALUE[&KEY=VALUE...] with keys
// error=eio|enospc|etimedout (required), ops=CLASS[|CLASS...] (default all),
// rate=P, trigger=PATH (at least one of the two), seed=N, ms=N (default 0; 1000 for
// etimedout), prefix=NAME-PREFIX. InvalidArgument naming the bad part.
Result<std::vector<FaultRule>> ParseFaultRules(std::string_view spec);

class FaultStore final : public ForwardingStore {
 public:
  // `spec` is the rules' text as given in the URI (for uri()); empty when built in code.
  FaultStore(std::shared_ptr<ObjectStore> inner, std::vector<FaultRule> rules, std::string spec = "");

  // Turns every rule off (false) or on again; on by default. Lets a test run a step
  // (a check, a cleanup) without faults.
  void set_enabled(bool on) { enabled_.store(on); }
  // How many calls failed because of a rule.
  uint64_t injected() const { return injected_.load(); }

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
  struct ArmedRule {
    FaultRule rule;
    std::mutex mu;
    std::mt19937_64 rng;  // GUARDED_BY(mu)
  };
  // The error to return instead of calling the inner store, if a rule fires for `op` on
  // `names` (the objects the call touches; List: its prefix).
  std::optional<Status> Check(StoreOp op, std::initializer_list<std::string_view> names);
  std::optional<Status> Check(StoreOp op, const std::vector<std::string>& names);
  std::optional<Status> CheckNames(StoreOp op, std::span<const std::string_view> names);

  std::vector<std::unique_ptr<ArmedRule>> rules_;
  const std::string spec_;
  std::atomic<bool> enabled_{true};
  std::atomic<uint64_t> injected_{0};
};

}  // namespace skerry
