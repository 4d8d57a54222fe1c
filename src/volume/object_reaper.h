// ObjectReaper: what an open head owes the store at its next flush. Two lists:
//
//   - the dirty set: objects written since the last flush, which the flush syncs before it
//     persists a map naming them (none on a store whose writes are durable at once);
//   - deferred deletes: block objects the head stopped naming (a trim, a copy-up, a shrink),
//     deleted only after a flush persisted the map that no longer names them, so a crash
//     never leaves an entry pointing at nothing.
//
// A delete is keyed by object name and numbered: an object of that name written anew (a hole
// filled again) cancels its pending delete, and a delete captured by a flush is carried out
// only if nothing cancelled or re-queued it since.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "skerry/object_store.h"
#include "util/mutex.h"

namespace skerry::volume {

class ObjectReaper {
 public:
  explicit ObjectReaper(ObjectStore& store) : store_(store) {}

  // `object` was written: the next flush syncs it. Nothing on a durable store.
  void MarkDirty(const std::string& object) EXCLUDES(mu_);
  // Syncs every object marked dirty so far; on failure they stay dirty for the next try.
  Status SyncDirty() EXCLUDES(mu_);

  // A block object to delete after the next flush persisted the map.
  void QueueDelete(uint64_t block, std::string object) EXCLUDES(mu_);
  // A new object of this name is being made: its pending delete (of a leftover) is off.
  void CancelDelete(const std::string& object) EXCLUDES(mu_);

  struct PendingDelete {
    uint64_t block;
    uint64_t seq;
  };
  using Deletes = std::map<std::string, PendingDelete>;
  // The deletes owed now. A flush captures them before it encodes the map it persists.
  Deletes PendingDeletes() const EXCLUDES(mu_);
  // Deletes what `captured` holds that is still owed as captured. `block_lock(block)` is the
  // block's lock, held around each delete so no write makes the object anew meanwhile. A
  // failed delete is owed again; the first error.
  Status DeleteCaptured(const Deletes& captured, const std::function<std::mutex&(uint64_t)>& block_lock)
      EXCLUDES(mu_);

  // Block objects deleted so far (counted before each delete). A read that finds its object
  // missing reads again when this moved since it looked at the map: the block may have been
  // trimmed, its object deleted, and written anew under the same name.
  uint64_t objects_deleted() const { return objects_deleted_.load(); }

 private:
  ObjectStore& store_;
  mutable Mutex mu_;
  std::unordered_set<std::string> dirty_ GUARDED_BY(mu_);
  Deletes deletes_ GUARDED_BY(mu_);
  uint64_t delete_seq_ GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> objects_deleted_{0};
};

}  // namespace skerry::volume
