// LeaseKeeper: keeps an open head's write lock (a lease in the store) and says whether
// writes are still allowed under it.
//
// The catalog takes the lock just before the head opens; the keeper counts the lease from
// then, less a margin for the time that took, and renews it on the clock every third of the
// lease (so two missed renewals still leave time). Each successful renewal extends the lease
// from the moment it was *sent*, so the keeper never believes in more lease than it has. Past
// that, Check refuses writes even before anybody else takes the lock; once a renewal finds the
// lock held by another owner, the keeper is fenced for good: that owner may be writing now.
//
// Time comes from an injected Clock (include/skerry/clock.h): tests and the crash runner run
// renewals and lapses in simulated time.
//
// Thread-safety: Check and fenced may be called from any thread; Start and Stop by the owner.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "skerry/clock.h"
#include "skerry/object_store.h"
#include "util/mutex.h"

namespace skerry::volume {

class LeaseKeeper {
 public:
  LeaseKeeper(ObjectStore& store, std::string lock_name, std::string owner, int64_t lease_ms,
              std::shared_ptr<Clock> clock);
  ~LeaseKeeper() { Stop(); }
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Counts the lease (taken just now by the caller) and schedules the first renewal.
  void Start();
  // No renewal runs or is scheduled once this returns.
  void Stop();

  // OK while the lease is known valid; IOError (naming `what`) once it was taken over or
  // could not be renewed in time.
  Status Check(const std::string& what) const;
  // A renewal found another owner holding the lock.
  bool fenced() const { return fenced_.load(); }
  const std::string& owner() const { return owner_; }
  const std::string& lock_name() const { return lock_name_; }

 private:
  void Renew();

  ObjectStore& store_;
  const std::string lock_name_;
  const std::string owner_;
  const int64_t lease_ms_;
  const std::shared_ptr<Clock> clock_;
  std::atomic<bool> fenced_{false};
  // Until when (clock ms) the lease is known valid.
  std::atomic<int64_t> valid_until_ms_{0};
  Mutex mu_;
  bool stopped_ GUARDED_BY(mu_) = false;
  Clock::TaskId next_ GUARDED_BY(mu_) = 0;  // the renewal scheduled
};

}  // namespace skerry::volume
