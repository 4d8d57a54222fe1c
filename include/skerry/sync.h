// SyncStores: copies a whole skerry store to another store (dir: → rados:, or any pair),
// for moving a deployment. Volumes, snapshots and clones keep working on the target byte
// for byte, because everything is named objects and the target gets the same objects.
//
// Order makes it safe to interrupt and run again: data objects, map chunks and snapshot
// records first, then headers, then the directory, which is what makes volumes visible.
// Objects the target already has with the same content are skipped, so a second run only
// copies what is missing or changed. Every copied object is read back and compared.
//
// The directory written last is the source's as read first: volumes created during the
// sync are left for the next run, and a volume removed during it fails the sync (Conflict)
// before the target's directory is touched, so it never names a volume without its header.
//
// REQUIRES: no volume of the source is open for writing (checked: Busy names the holder).
#pragma once

#include <cstdint>
#include <functional>

#include "skerry/object_store.h"
#include "skerry/status.h"

namespace skerry {

struct SyncOptions {
  int threads = 4;
  // Called with (objects done, objects total) from any thread, serialized.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct SyncReport {
  uint64_t objects = 0;  // objects in the source (lock objects excluded)
  uint64_t copied = 0;
  uint64_t skipped = 0;  // already on the target, same content
  uint64_t bytes_copied = 0;
};

Result<SyncReport> SyncStores(ObjectStore& from, ObjectStore& to, const SyncOptions& options);

}  // namespace skerry
