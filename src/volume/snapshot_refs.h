// SnapshotRefs: which of a volume's own objects its snapshots name.
//
// The head of a volume names objects of older epochs that a snapshot froze. Once no
// snapshot names such an object any more (they were removed), the head is its only user,
// and when the head stops naming it (an overwrite copies the block up, a trim, a shrink, a
// rollback) it must be deleted, or its space is lost for good. This answers "does any
// snapshot still name it?" from the snapshots' frozen maps, read once and kept.
//
// The set of snapshots changes only through the open head (it holds the write lock), which
// calls Forget() after each such change. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "skerry/object_store.h"
#include "util/mutex.h"
#include "volume/format.h"
#include "volume/volume_map.h"

namespace skerry::volume {

class SnapshotRefs {
 public:
  SnapshotRefs(ObjectStore& store, VolumeId self) : store_(store), self_(self) {}

  // Whether a snapshot names `e`, an object of this volume, for block `block`.
  Result<bool> NamesBlock(uint64_t block, const Entry& e);
  // Whether a snapshot's chunk table names `ref`, one of this volume's chunks, as chunk `c`.
  Result<bool> NamesChunk(uint64_t c, const ChunkRef& ref);
  // Snapshots were created or removed: read them again on next use.
  void Forget();

 private:
  struct Snap {
    uint64_t epoch;
    std::vector<ChunkRef> chunks;
    std::unique_ptr<VolumeMap> map;  // frozen: loads chunks on first use, never writes
  };
  Status LoadLocked() REQUIRES(mu_);

  ObjectStore& store_;
  const VolumeId self_;
  Mutex mu_;
  bool loaded_ GUARDED_BY(mu_) = false;
  std::vector<Snap> snaps_ GUARDED_BY(mu_);
};

}  // namespace skerry::volume
