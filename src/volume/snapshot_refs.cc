#include "volume/snapshot_refs.h"

#include "volume/map_objects.h"
#include "volume/metadata.h"

namespace skerry::volume {

Status SnapshotRefs::LoadLocked() {
  if (loaded_) return Status::OK();
  SKERRY_ASSIGN_OR_RETURN(Header h, ReadHeader(store_, self_));
  std::vector<Snap> snaps;
  for (const SnapshotEntry& s : h.snapshots) {
    SKERRY_ASSIGN_OR_RETURN(SnapshotRecord r, ReadSnapshotRecord(store_, self_, s.id));
    MapSpec spec = MapSpec::Of(r);
    auto map = spec.Open(store_);
    snaps.push_back(Snap{spec.epoch, std::move(spec.chunks), std::move(map)});
  }
  snaps_ = std::move(snaps);
  loaded_ = true;
  return Status::OK();
}

Result<bool> SnapshotRefs::NamesBlock(uint64_t block, const Entry& e) {
  MutexLock lock(&mu_);
  SKERRY_RETURN_IF_ERROR(LoadLocked());
  for (Snap& s : snaps_) {
    // A snapshot taken before the object's epoch cannot name it.
    if (s.epoch < e.epoch || block >= s.map->blocks()) continue;
    SKERRY_ASSIGN_OR_RETURN(Entry named, s.map->Get(block));
    if (named.SameObject(e)) return true;
  }
  return false;
}

Result<bool> SnapshotRefs::NamesChunk(uint64_t c, const ChunkRef& ref) {
  MutexLock lock(&mu_);
  SKERRY_RETURN_IF_ERROR(LoadLocked());
  for (const Snap& s : snaps_)
    if (c < s.chunks.size() && s.chunks[c] == ref) return true;
  return false;
}

void SnapshotRefs::Forget() {
  MutexLock lock(&mu_);
  loaded_ = false;
  snaps_.clear();
}

}  // namespace skerry::volume
