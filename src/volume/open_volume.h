// OpenVolume: the implementation of skerry::Volume over a VolumeMap and an ObjectStore. It
// orchestrates; the state machines it drives live in rooms of their own:
//
//   copy_up_queue.h   deferred copy-ups of shared blocks (held writes, copier threads)
//   lease_keeper.h    the write lock's lease: renewal, lapse, fencing of writes
//   partial_block.h   where a partial block's bytes are, and how a write changes it
//   object_reaper.h   objects to sync at the next flush, and deletes owed after it
//   volume_admin.cc   snapshot, resize, rollback and snapshot removal of an open head
//   volume_read.cc    the read path (blocking, into a pipe, asynchronous) and extents
//
// Writes go in place to this volume's objects of the current epoch; the first write to a
// block that is a hole creates its object, and the first write to a block shared with a
// snapshot or a parent copies the shared object server-side first (copy-on-write), is held
// for a deferred copy-up, or (a clone's block its parent holds) makes the entry partial. Map
// changes are persisted by Flush (see docs/crash-contract.md for the order of steps).
//
// Concurrency: every I/O holds `gate_` shared (an asynchronous read from start to
// completion, across threads: IoGate); management operations (snapshot, resize, rollback,
// close) hold it exclusively, which drains in-flight I/O and holds new I/O until they
// finish. Writes to one block are serialized by a striped block lock so a copy-up happens
// once. Lock order: gate, block lock, flush_mu_, the copy-up queue's, the map's own.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "skerry/volume.h"
#include "util/mutex.h"
#include "util/volume_fast_paths.h"
#include "volume/copy_up_queue.h"
#include "volume/format.h"
#include "volume/io_gate.h"
#include "volume/lease_keeper.h"
#include "volume/object_reaper.h"
#include "volume/partial_block.h"
#include "volume/snapshot_refs.h"
#include "volume/volume_map.h"

namespace skerry {
class FanIn;
}

namespace skerry::volume {

class OpenVolume final : public Volume, public VolumeFastPaths, private CopyUpHost {
 public:
  // A volume's head, read-write unless `read_only`. The caller holds the write lock already
  // (for read-write); OpenVolume renews the lease and releases it on Close.
  static std::unique_ptr<OpenVolume> Head(std::shared_ptr<ObjectStore> store, std::string name,
                                          const Header& header, bool read_only, std::string lock_owner,
                                          int64_t lease_ms, const VolumeOptions& options);
  // A snapshot, always read-only.
  static std::unique_ptr<OpenVolume> Snapshot(std::shared_ptr<ObjectStore> store, std::string name,
                                              const SnapshotRecord& record, const VolumeOptions& options);
  ~OpenVolume() override;

  const std::string& name() const override { return name_; }
  std::string volume_id() const override { return id_.Hex(); }
  uint64_t size() const override { return size_.load(); }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return read_only_; }

  Status Read(uint64_t offset, std::span<char> out) override;
  Status Write(uint64_t offset, std::span<const char> data, bool fua) override;
  Status Trim(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua) override;
  Status Flush() override;
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override;
  Status CreateSnapshot(const std::string& snap) override;  // volume_admin.cc
  Status Resize(uint64_t new_size, bool allow_shrink) override;  // volume_admin.cc
  Status Close() override;

  // The fast paths (util/volume_fast_paths.h): asynchronous reads and writes where the
  // store's data path is natively asynchronous, zero-copy reads where it splices.
  Caps fast_paths() const override { return Caps{async_reads_, pipe_reads_, async_reads_ && !read_only_}; }
  void ReadAsync(uint64_t offset, std::span<char> out, Done done) override;
  Status ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) override;
  bool TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) override;

  // Catalog operations that need the volume held open and drained (volume_admin.cc).
  // `live_children` names the clones of a snapshot that still exist (empty: none).
  Status RemoveSnapshot(const std::string& snap,
                        const std::function<Result<std::vector<std::string>>(const SnapshotEntry&)>& live_children);
  Status Rollback(const std::string& snap);
  const VolumeId& id() const { return id_; }

  // What a copier thread does, run here: up to `n` pending copy-ups. For seeded runs that
  // decide themselves when background work happens (CopyUpMode::kOnDemand).
  int RunQueuedCopyUps(int n) { return copy_ups_ ? copy_ups_->RunQueued(n) : 0; }

 private:
  OpenVolume(std::shared_ptr<ObjectStore> store, std::string name, VolumeId id, uint64_t size,
             uint32_t block_size, uint64_t epoch, uint32_t per_chunk, std::vector<ChunkRef> chunks,
             bool read_only, const VolumeOptions& options);

  // ---- checks and small helpers
  // Where [offset, offset+length) falls: calls fn(block, offset in block, length in block, offset in request).
  template <class Fn>
  Status ForEachBlock(uint64_t offset, uint64_t length, Fn&& fn);
  Status CheckRange(uint64_t offset, uint64_t length) const;
  Status CheckWritable() const;
  // IOError once the write lock was lost, its lease could not be renewed in time, or a
  // snapshot's outcome is unknown (CheckWritable without closed_: a copier may ask while
  // Close runs).
  Status CheckLease() const;
  uint64_t BlockLength(uint64_t block) const;
  bool IsWritable(const Entry& e) const;
  // A partial entry of ours of the current epoch: written in place, granule by granule.
  bool IsOwnPartial(const Entry& e) const;
  // Whether a write into shared block with entry `e` makes it partial instead of copying it.
  bool CanStartPartial(const Entry& e) const;
  std::mutex& BlockLock(uint64_t block) { return block_locks_[block % block_locks_.size()]; }

  // ---- reads
  // One block's read of [off, off+len), in order: from_object(name, off, len) reads a piece
  // of an object, from_hole(off, len) fills a hole; looks at the map again (for the rest of
  // the range) when a concurrent trim released the object meanwhile.
  template <class FromObject, class FromHole>
  Status ReadBlockVia(uint64_t block, uint64_t off, uint64_t len, FromObject&& from_object, FromHole&& from_hole,
                      int attempt = 0);
  Status ReadBlock(uint64_t block, uint64_t off, std::span<char> out);
  // The FanIn of an asynchronous read or write that entered the gate shared: when its
  // last piece finishes, it leaves the gate, then calls `done`.
  FanIn* StartUnderGate(Done done);
  // One block's part of an asynchronous read, finishing one count of `op`; `attempt`
  // counts looks at the map after a concurrent trim released the object (as in ReadBlock).
  void ReadBlockAsync(FanIn* op, uint64_t block, uint64_t off, std::span<char> out, int attempt);

  // ---- writes
  Status WriteBlock(uint64_t block, uint64_t off, std::span<const char> data);
  // The part of WriteBlock (ZeroBlock) after a pending copy-up was dealt with.
  Status WriteBlockLocked(uint64_t block, uint64_t off, std::span<const char> data, bool whole);
  Status ZeroBlock(uint64_t block, uint64_t off, uint64_t len, bool may_trim);
  Status ZeroBlockLocked(uint64_t block, uint64_t off, uint64_t len, bool may_trim, bool whole);
  Status ZeroRange(uint64_t offset, uint64_t length, bool may_trim);
  // Asynchronous writes in flight in the block's stripe (see TryWriteAsync).
  std::atomic<int>& StripeWrites(uint64_t block) { return stripe_writes_[block % stripe_writes_.size()]; }
  // Counts an asynchronous write into [off, off+len) of `block` if the block is this volume's
  // own object of the current epoch (a partial one: holding those granules already) with its
  // map chunk in memory; false (nothing counted) otherwise.
  bool PinForAsyncWrite(uint64_t block, uint64_t off, uint64_t len);
  void UnpinAsyncWrite(uint64_t block);
  // Waits until no asynchronous write is in flight in the block's stripe, before its
  // object may be released. REQUIRES: block lock held (so no new write is counted).
  void WaitForAsyncWrites(uint64_t block);
  // Makes block `block` a private object of the current epoch holding its current content
  // (copy-up of a shared object, or an empty object for a hole). Returns the object name.
  // REQUIRES: block lock held.
  Result<std::string> MakePrivate(uint64_t block, const Entry& current);
  // Copies block `block` as `from` says into object `to` (a partial one's base granules too).
  Status CopyBlockTo(uint64_t block, const Entry& from, const std::string& to);
  // Writes `data` at `off` into block `block` whose entry `e` is a partial one of ours or one
  // CanStartPartial allows, without copying the block: the entry becomes (or stays) partial,
  // private once every granule is in its own object. REQUIRES: block lock held.
  Status WritePartial(uint64_t block, const Entry& e, uint64_t off, std::span<const char> data);
  // Gives block `block` a new object of the current epoch, which `fill(name)` creates fresh
  // (replacing any leftover of that name) and fills; the map names it only once that
  // succeeded, so a failure leaves the block as it was. `replaced` is the entry it replaces.
  // REQUIRES: block lock held.
  Status FillNewObject(uint64_t block, const Entry& replaced, const std::function<Status(const std::string&)>& fill);

  // ---- what the head alone names, and releasing it
  // The head no longer names `old` for `block` (the map says so already): if the head was its
  // only user, its delete is queued, for after the next flush persisted the map. Best effort:
  // when the snapshots cannot be read the object stays, and `skerry check` lists it.
  void ReleaseIfUnshared(uint64_t block, const Entry& old);
  // Whether the head is the only user of `e` for `block` (of chunk `ref` as chunk `c`): an
  // object of ours of the current epoch, or of an older one that no snapshot names.
  Result<bool> HeadAloneNames(uint64_t block, const Entry& e);
  Result<bool> HeadAloneNames(uint64_t c, const ChunkRef& ref);
  // The same for chunk objects the chunk table no longer names: deleted now if the head was
  // their only user. REQUIRES: the header naming the new table was written.
  Status DeleteUnsharedChunks(const std::vector<std::pair<uint64_t, ChunkRef>>& chunks);

  // ---- deferred copy-up: this volume's steps (CopyUpHost)
  Status MayWrite(uint64_t block) override;
  Status CopyBlock(CopyUpJob& job) override;
  Status WriteHeld(const CopyUpJob& job, const std::vector<HeldExtent>& extents) override;
  Status Land(const CopyUpJob& job) override;

  // ---- flush
  // Flush without taking the gate. REQUIRES: gate held (either mode).
  Status FlushLocked(bool force_header) EXCLUDES(flush_mu_);
  Status WriteHeader(const std::function<Status(Header&)>& extra);

  // ---- management helpers (volume_admin.cc)
  // Zeros the last block's bytes past the end of the volume (a shrink leaves them as they
  // were). Before a grow shows them; before a snapshot, if any is not zero, so a larger clone
  // of it (which shows them without growing) reads zeros there.
  Status ZeroPastEnd();
  Status ZeroStalePastEnd();

  const std::shared_ptr<ObjectStore> store_;
  const std::string name_;
  const VolumeId id_;
  const uint32_t block_size_;
  const uint32_t per_chunk_;
  const bool read_only_;
  const bool async_reads_;  // the store's data path is natively asynchronous
  const bool pipe_reads_;   // the store splices objects into pipes (ObjectStore::ReadToPipe)
  // Writes into blocks shared with the parent make partial entries (no copy).
  const bool partial_blocks_;
  std::atomic<uint64_t> size_;
  std::atomic<uint64_t> epoch_;
  std::unique_ptr<VolumeMap> map_;

  IoGate gate_;
  std::array<std::mutex, 256> block_locks_;
  // Per stripe of block_locks_: asynchronous writes started (under the stripe's lock) and
  // not yet completed. Completions decrement it without any lock: a store's completion
  // thread must never wait for a block lock, whose holder may be waiting for that very
  // thread to deliver its own completion.
  std::array<std::atomic<int>, 256> stripe_writes_{};

  Mutex flush_mu_;
  // The persisted header lags the chunk table or size: a flush changed them but failed
  // before its header update succeeded. The next flush writes the header.
  bool header_stale_ GUARDED_BY(flush_mu_) = false;
  // A shrink's header, with the new size and the chunk table before its shortened last chunk
  // is written, is not written yet: the next flush writes it before any chunk, so a crash
  // never leaves the old size with that chunk.
  bool shrink_header_first_ GUARDED_BY(flush_mu_) = false;
  // Chunks of ours (older epochs) the chunk table stopped naming, to delete once a header
  // write names the new table.
  std::vector<std::pair<uint64_t, ChunkRef>> replaced_chunks_ GUARDED_BY(flush_mu_);

  // What this volume's snapshots name: decides whether the head's older objects can go.
  SnapshotRefs snapshot_refs_;
  ObjectReaper reaper_;
  // Deferred copy-ups; null when this volume never defers one (read-only, or CopyUpMode::kOff,
  // or a natively asynchronous store without copier threads: an asynchronous read of a block
  // with a pending copy-up is handed to them, as it must not wait on the caller's thread).
  std::unique_ptr<CopyUpQueue> copy_ups_;
  // The write lock's lease (read-write heads only).
  std::unique_ptr<LeaseKeeper> lease_;
  // A snapshot's header update failed and the header could not be read after: whether the
  // volume moved to the next epoch is unknown, so nothing may be written (CheckLease).
  std::atomic<bool> uncertain_{false};
  std::string uncertain_cause_;  // the store's error; written once, before uncertain_ is set
  bool closed_ = false;          // under the gate, exclusively
};

template <class Fn>
Status OpenVolume::ForEachBlock(uint64_t offset, uint64_t length, Fn&& fn) {
  uint64_t done = 0;
  while (done < length) {
    uint64_t pos = offset + done;
    uint64_t block = pos / block_size_;
    uint64_t in_block = pos % block_size_;
    uint64_t n = std::min<uint64_t>(length - done, block_size_ - in_block);
    SKERRY_RETURN_IF_ERROR(fn(block, in_block, n, done));
    done += n;
  }
  return Status::OK();
}

}  // namespace skerry::volume
