// Management of an open head: snapshot, resize, snapshot removal and rollback. Each holds the
// volume's gate exclusively (no I/O in flight), flushes first, and changes the header in one
// compare-and-swap, under the write lock's lease (docs/crash-contract.md).
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "volume/map_objects.h"
#include "volume/metadata.h"
#include "volume/open_volume.h"

namespace skerry::volume {

Status OpenVolume::CreateSnapshot(const std::string& snap) {
  SKERRY_RETURN_IF_ERROR(ValidateVolumeName(snap).Prefixed("snapshot name"));
  ExclusiveGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  // What the snapshot freezes must not show a larger clone anything past its end: no map
  // chunk with entries there (a crash cut a shrink short; loading the last chunk marks such
  // a one for the flush below to rewrite) and no stale bytes in its last block.
  if (uint64_t blocks = map_->blocks(); blocks > 0) SKERRY_RETURN_IF_ERROR(map_->Get(blocks - 1).status());
  SKERRY_RETURN_IF_ERROR(ZeroStalePastEnd());
  SKERRY_RETURN_IF_ERROR(FlushLocked(false));
  SKERRY_ASSIGN_OR_RETURN(Header h, ReadHeader(*store_, id_));
  if (h.FindSnapshot(snap)) return Status::AlreadyExists(fmt::format("snapshot '{}@{}' already exists", name_, snap));
  SnapshotRecord rec;
  rec.volume = id_;
  rec.id = h.next_snap_id;
  rec.epoch = epoch_.load();
  rec.size = size_.load();
  rec.block_size = block_size_;
  rec.entries_per_chunk = per_chunk_;
  rec.chunks = map_->chunk_table();
  // The record first (invisible until the header names it), then the header in one step;
  // under the lease, which the flush and reads above may have outlasted.
  SKERRY_RETURN_IF_ERROR(CheckLease());
  SKERRY_RETURN_IF_ERROR(store_->Put(SnapshotObject(id_, rec.id), EncodeSnapshotRecord(rec)));
  uint64_t next_epoch = rec.epoch + 1;
  bool refused = false;  // by the change below, not by the store
  Status st = UpdateHeader(*store_, id_, [&](Header& cur) -> Status {
    refused = true;
    if (cur.FindSnapshot(snap)) return Status::AlreadyExists(fmt::format("snapshot '{}@{}' already exists", name_, snap));
    if (cur.epoch != rec.epoch) return Status::Busy(fmt::format("{} was changed by another writer", name_));
    refused = false;
    SnapshotEntry e;
    e.id = rec.id;
    e.epoch = rec.epoch;
    e.size = rec.size;
    e.created_unix_ms = NowUnixMs();
    e.name = snap;
    cur.snapshots.push_back(std::move(e));
    cur.next_snap_id = rec.id + 1;
    cur.epoch = next_epoch;
    cur.chunks = rec.chunks;
    return Status::OK();
  });
  if (!st.ok() && !refused) {
    // The store failed, but its update may have landed (the directory store renamed, then
    // its directory fsync failed; a RADOS timeout after the write): look. Landed, the
    // snapshot exists and the volume is at the next epoch, whatever the error said.
    Result<Header> now = ReadHeader(*store_, id_);
    if (!now.ok()) {
      // Not knowing the epoch, no write is safe: one into the old epoch's objects would
      // change the snapshot if it exists. Writes and flushes fail until the volume reopens.
      uncertain_cause_ = st.ToString();  // before the flag: readers look at it after
      uncertain_.store(true);
      return st.Prefixed(fmt::format("snapshot '{}@{}' may have been taken ({} stops writing until reopened)",
                                     name_, snap, name_));
    }
    const SnapshotEntry* landed = now->FindSnapshotById(rec.id);
    if (!landed) {
      store_->Delete(SnapshotObject(id_, rec.id));
      return st;
    }
    if (landed->name != snap || now->epoch != next_epoch) {
      // The header names this record, but not as our change left it: keep the record and
      // stop writing, as when the header cannot be read.
      uncertain_cause_ = st.ToString();
      uncertain_.store(true);
      return st.Prefixed(fmt::format("snapshot '{}@{}': the header changed under it ({} stops writing until reopened)",
                                     name_, snap, name_));
    }
    st = st.Prefixed(fmt::format("snapshot '{}@{}' was taken, but the store reported an error", name_, snap));
  } else if (!st.ok()) {
    store_->Delete(SnapshotObject(id_, rec.id));
    return st;
  }
  // From here on, everything of the old epoch is frozen: the next write to any block copies it.
  epoch_.store(next_epoch);
  map_->SetEpoch(next_epoch);
  snapshot_refs_.Forget();
  return st;
}

Status OpenVolume::Resize(uint64_t new_size, bool allow_shrink) {
  SKERRY_RETURN_IF_ERROR(ValidateVolumeSize(new_size));
  ExclusiveGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  // Pending copy-ups first: the map may drop their blocks below.
  if (copy_ups_) SKERRY_RETURN_IF_ERROR(copy_ups_->FinishStartedUpTo(UINT64_MAX));
  // An earlier resize whose header never landed is finished first: a grow must not write
  // its larger size over a shrink's chunk not yet shortened, and a retry of a failed resize
  // (whose size this volume already has) must not return OK before it is durable.
  bool header_pending;
  {
    MutexLock flush(&flush_mu_);
    header_pending = shrink_header_first_ || header_stale_;
  }
  if (header_pending) SKERRY_RETURN_IF_ERROR(FlushLocked(/*force_header=*/false));
  uint64_t old_size = size_.load();
  if (new_size == old_size) return Status::OK();
  std::vector<std::pair<uint64_t, ChunkRef>> dropped_chunks;
  const uint64_t new_blocks = (new_size + block_size_ - 1) / block_size_;
  if (new_size < old_size) {
    if (!allow_shrink)
      return Status::InvalidArgument(fmt::format("{}: shrinking from {} to {} bytes discards data; pass --allow-shrink",
                                                 name_, old_size, new_size));
    // The header first: one update makes the shrink happen. It names only chunks that exist
    // (the old last chunk, whose entries past the new end are ignored from then on, is
    // written shortened by the flush after), so a crash leaves the old size and content or
    // the new ones. The bytes of the new last block past the new end stay as they were,
    // unseen: growing (ZeroPastEnd) and snapshots (ZeroStalePastEnd) zero them.
    std::vector<std::pair<uint64_t, Entry>> dropped;
    SKERRY_RETURN_IF_ERROR(map_->Resize(new_blocks, &dropped, &dropped_chunks));
    for (auto& [block, e] : dropped) {
      std::lock_guard lock(BlockLock(block));
      ReleaseIfUnshared(block, e);
    }
    size_.store(new_size);
    {
      MutexLock flush(&flush_mu_);
      shrink_header_first_ = true;  // this flush, or the next if it fails, writes it first
    }
    SKERRY_RETURN_IF_ERROR(FlushLocked(/*force_header=*/false));
  } else {
    // Growing shows the old last block's bytes past the old end: zeroed first, while they
    // are still past it. Then the map's chunks, then the header (a flush), so a crash leaves
    // the old size (with zeros where nobody looks) or the new one.
    SKERRY_RETURN_IF_ERROR(ZeroPastEnd());
    std::vector<std::pair<uint64_t, Entry>> none;
    SKERRY_RETURN_IF_ERROR(map_->Resize(new_blocks, &none, &dropped_chunks));
    size_.store(new_size);
    SKERRY_RETURN_IF_ERROR(FlushLocked(/*force_header=*/true));
  }
  return DeleteUnsharedChunks(dropped_chunks);  // the chunks past the new end
}

Status OpenVolume::RemoveSnapshot(
    const std::string& snap,
    const std::function<Result<std::vector<std::string>>(const SnapshotEntry&)>& live_children) {
  ExclusiveGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  SKERRY_RETURN_IF_ERROR(FlushLocked(false));
  SKERRY_ASSIGN_OR_RETURN(Header h, ReadHeader(*store_, id_));
  const SnapshotEntry* target = h.FindSnapshot(snap);
  if (!target) return Status::NotFound(fmt::format("snapshot '{}@{}' does not exist", name_, snap));
  SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> children, live_children(*target));
  if (!children.empty()) {
    std::string names;
    for (auto& c : children) names += (names.empty() ? "" : ", ") + c;
    return Status::Busy(fmt::format("snapshot '{}@{}' has clones that depend on it: {}; remove them first",
                                    name_, snap, names));
  }
  // Objects of ours that the snapshot references, minus those any other snapshot or the
  // head references: those are the snapshot's alone.
  SKERRY_ASSIGN_OR_RETURN(SnapshotRecord rec, ReadSnapshotRecord(*store_, id_, target->id));
  std::set<std::string> candidates;
  // Our own chunk and block objects a map names (a partial entry's base is not ours).
  auto ours = [&](bool erase) {
    auto mark = [&, erase](const std::string& n) { erase ? (void)candidates.erase(n) : (void)candidates.insert(n); };
    return MapObjectVisitor{
        [&, mark](uint64_t, const ChunkRef& ref, const std::string& object) {
          if (ref.owner == id_) mark(object);
          return true;
        },
        [&, mark](uint64_t, const Entry& e, const std::string& object, const std::string&) {
          if (e.has_own_object() && e.owner == id_) mark(object);
        },
        nullptr};
  };
  SKERRY_RETURN_IF_ERROR(ForEachMapObject(*store_, MapSpec::Of(rec), ours(false)));
  for (const SnapshotEntry& other : h.snapshots) {
    if (other.id == target->id || candidates.empty()) continue;
    SKERRY_ASSIGN_OR_RETURN(SnapshotRecord o, ReadSnapshotRecord(*store_, id_, other.id));
    SKERRY_RETURN_IF_ERROR(ForEachMapObject(*store_, MapSpec::Of(o), ours(true)));
  }
  SKERRY_RETURN_IF_ERROR(ForEachMapObject(*map_, map_->chunk_table(), ours(true)));
  uint64_t snap_id = target->id;
  // Reading every snapshot's map can take long: the lease may have lapsed meanwhile, and
  // then another daemon may own the volume and its header.
  SKERRY_RETURN_IF_ERROR(CheckLease());
  SKERRY_RETURN_IF_ERROR(UpdateHeader(*store_, id_, [&](Header& cur) -> Status {
    auto it = std::find_if(cur.snapshots.begin(), cur.snapshots.end(), [&](auto& s) { return s.id == snap_id; });
    if (it == cur.snapshots.end()) return Status::NotFound(fmt::format("snapshot '{}@{}' does not exist", name_, snap));
    if (!it->children.empty()) {
      // A clone may have appeared since we looked; re-check under the CAS.
      auto again = live_children(*it);
      if (!again.ok()) return again.status();
      if (!again->empty()) return Status::Busy(fmt::format("snapshot '{}@{}' gained a clone; not removed", name_, snap));
    }
    cur.snapshots.erase(it);
    return Status::OK();
  }));
  snapshot_refs_.Forget();
  // The snapshot is gone from the header; what follows only frees space.
  SKERRY_RETURN_IF_ERROR(CheckLease());
  SKERRY_RETURN_IF_ERROR(store_->DeleteMany(std::vector<std::string>(candidates.begin(), candidates.end())));
  Status st = store_->Delete(SnapshotObject(id_, snap_id));
  return st.IsNotFound() ? Status::OK() : st;
}

Status OpenVolume::Rollback(const std::string& snap) {
  ExclusiveGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  SKERRY_RETURN_IF_ERROR(FlushLocked(false));
  SKERRY_ASSIGN_OR_RETURN(Header h, ReadHeader(*store_, id_));
  const SnapshotEntry* target = h.FindSnapshot(snap);
  if (!target) return Status::NotFound(fmt::format("snapshot '{}@{}' does not exist", name_, snap));
  SKERRY_ASSIGN_OR_RETURN(SnapshotRecord rec, ReadSnapshotRecord(*store_, id_, target->id));
  // Everything of the current epoch belongs to the head alone (snapshots froze older
  // epochs), so it is garbage after the rollback; so is what the head names of older epochs
  // that no snapshot names (their snapshots were removed), the target included.
  uint64_t old_epoch = epoch_.load();
  std::vector<std::string> garbage;
  std::vector<ChunkRef> old_table = map_->chunk_table();
  for (uint64_t c = 0; c < old_table.size(); c++) {
    SKERRY_ASSIGN_OR_RETURN(bool alone, HeadAloneNames(c, old_table[c]));
    if (alone) garbage.push_back(ChunkObject(old_table[c], c));
  }
  std::vector<std::pair<uint64_t, Entry>> entries;  // looked at outside ForEach, which holds the map
  SKERRY_RETURN_IF_ERROR(map_->ForEach([&](uint64_t block, const Entry& e) { entries.push_back({block, e}); }));
  for (const auto& [block, e] : entries) {
    SKERRY_ASSIGN_OR_RETURN(bool alone, HeadAloneNames(block, e));
    if (alone) garbage.push_back(BlockObject(id_, e.epoch, block));
  }
  uint64_t new_epoch = old_epoch + 1;
  // As in a flush: after the reads above, a lapsed lease means the header and the current
  // epoch's objects may be another daemon's now; neither is touched.
  SKERRY_RETURN_IF_ERROR(CheckLease());
  SKERRY_RETURN_IF_ERROR(UpdateHeader(*store_, id_, [&](Header& cur) -> Status {
    cur.size = rec.size;
    cur.epoch = new_epoch;
    cur.chunks = rec.chunks;
    return Status::OK();
  }));
  epoch_.store(new_epoch);
  size_.store(rec.size);
  map_ = std::make_unique<VolumeMap>(*store_, id_, new_epoch, (rec.size + block_size_ - 1) / block_size_,
                                     per_chunk_, rec.chunks);
  SKERRY_RETURN_IF_ERROR(CheckLease());
  return store_->DeleteMany(garbage);
}


Status OpenVolume::ZeroPastEnd() {
  const uint64_t size = size_.load();
  if (size % block_size_ == 0) return Status::OK();
  // A hole stays one (may_trim); a block is copied up only if it is shared.
  return ZeroBlock(size / block_size_, size % block_size_, block_size_ - size % block_size_, /*may_trim=*/true);
}

Status OpenVolume::ZeroStalePastEnd() {
  const uint64_t size = size_.load();
  if (size % block_size_ == 0) return Status::OK();
  const uint64_t block = size / block_size_, off = size % block_size_;
  SKERRY_ASSIGN_OR_RETURN(Entry e, map_->Get(block));
  if (e.is_hole()) return Status::OK();
  // Looked at first: zeroing a shared block would copy it up for nothing.
  std::string tail(block_size_ - off, '\0');
  SKERRY_RETURN_IF_ERROR(ReadBlock(block, off, std::span<char>(tail.data(), tail.size())));
  if (tail.find_first_not_of('\0') == std::string::npos) return Status::OK();
  return ZeroPastEnd();
}

}  // namespace skerry::volume
