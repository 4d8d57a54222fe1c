// GcGuard: keeps garbage collection and new references to content objects apart, across
// hosts, through the store alone (docs/dedup-gc.md, "Collecting safely").
//
// A content object (c.<sha256>) becomes referenced when a map that names it is persisted.
// Only deduplication makes such references to objects that may already exist (an import
// that finds its block stored already, a snapshot's dedup); a collection that lists the
// objects and walks the maps while one of those runs could miss a reference that is about to
// be persisted and delete the object under it. So:
//
//   - a deduplicating writer holds a *hold*: lease lock gc.hold.<token>, renewed while it
//     runs, taken before its first reference and released after its last flush;
//   - a collection holds gc.running, a lease lock, from before it lists anything until its
//     last delete.
//
// Each side writes its own lock first and looks for the other's after (Dekker's order, on a
// store whose every call is linearizable): a writer that finds a collection running releases
// nothing, waits for it to end, and looks again; a collection that finds a live hold gives up
// (Busy) before it deleted anything. At least one of two that start together sees the other.
// A hold whose lease lapsed (its writer paused or cut off) no longer protects anything: the
// writer must fail instead of persisting references (Check), as a volume whose write lock
// lapsed refuses writes.
//
// Thread-safety: Check may be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "skerry/clock.h"
#include "skerry/object_store.h"
#include "volume/lease_keeper.h"

namespace skerry::volume {

inline constexpr const char* kGcRunningLock = "gc.running";
inline constexpr const char* kGcHoldPrefix = "gc.hold.";

class GcHold {
 public:
  // Takes a hold for `owner`, waiting up to `wait_ms` for a running collection to end
  // (Busy naming it after that).
  static Result<std::unique_ptr<GcHold>> Acquire(ObjectStore& store, const std::string& owner, int64_t lease_ms,
                                                 std::shared_ptr<Clock> clock, int64_t wait_ms);
  ~GcHold();
  // OK while the hold is known valid: references made so far may be persisted.
  Status Check() const { return lease_.Check("the deduplication's hold on garbage collection"); }
  // Releases the hold (after the last flush). Also done by the destructor.
  Status Release();

 private:
  GcHold(ObjectStore& store, std::string name, std::string owner, int64_t lease_ms, std::shared_ptr<Clock> clock);
  ObjectStore& store_;
  const std::string name_;
  const std::string owner_;
  LeaseKeeper lease_;
  bool released_ = false;
};

// A collection's right to delete: gc.running, with no live hold seen after taking it.
class GcRunning {
 public:
  // Busy when another collection runs or a deduplicating writer holds off collections.
  static Result<std::unique_ptr<GcRunning>> Start(ObjectStore& store, const std::string& owner, int64_t lease_ms,
                                                  std::shared_ptr<Clock> clock);
  ~GcRunning();
  // OK while the collection may still delete (its lease is known valid).
  Status Check() const { return lease_.Check("garbage collection"); }
  Status Finish();

 private:
  GcRunning(ObjectStore& store, std::string owner, int64_t lease_ms, std::shared_ptr<Clock> clock);
  ObjectStore& store_;
  const std::string owner_;
  LeaseKeeper lease_;
  bool finished_ = false;
};

// The live holds (their owners), for messages and `skerry gc`.
Result<std::vector<std::string>> LiveGcHolds(ObjectStore& store);

}  // namespace skerry::volume
