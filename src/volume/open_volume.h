// OpenVolume: the implementation of skerry::Volume over a VolumeMap and an ObjectStore.
//
// Writes go in place to this volume's objects of the current epoch; the first write to
// a block that is a hole creates its object, and the first write to a block shared with
// a snapshot or a parent copies the shared object server-side first (copy-on-write).
// Map changes are persisted by Flush (see docs/crash-contract.md for the order of steps).
//
// Concurrency: every I/O holds `gate_` shared (an asynchronous read from start to
// completion, across threads: IoGate); management operations (snapshot, resize,
// rollback, close) hold it exclusively, which drains in-flight I/O and holds new I/O
// until they finish. Writes to one block are serialized by a striped block lock so a
// copy-up happens once.
//
// Deferred copy-up (stores without native asynchronous I/O): the first write into a shared
// block does not wait for the copy. The write is held in memory and acknowledged, a copier
// thread copies the block, applies the held writes in order and only then points the map at
// the new object. Reads, trims and zeroes of that block, and every flush, wait for it (or do
// it themselves); a copy that fails keeps its held writes and is retried by the next flush,
// which fails until it succeeds, so a flush never succeeds over a lost write. Like any
// write, a held one is durable only after a flush. docs/architecture.md, "Deferred copy-up".
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "skerry/volume.h"
#include "volume/format.h"
#include "volume/held_writes.h"
#include "volume/io_gate.h"
#include "volume/snapshot_refs.h"
#include "volume/volume_map.h"

namespace skerry {
class FanIn;
}

namespace skerry::volume {

class OpenVolume final : public Volume {
 public:
  // A volume's head, read-write unless `read_only`. The caller holds the write lock already
  // (for read-write); OpenVolume renews the lease and releases it on Close.
  static std::unique_ptr<OpenVolume> Head(std::shared_ptr<ObjectStore> store, std::string name,
                                          const Header& header, bool read_only,
                                          std::string lock_owner, int64_t lease_ms);
  // A snapshot, always read-only.
  static std::unique_ptr<OpenVolume> Snapshot(std::shared_ptr<ObjectStore> store, std::string name,
                                              const SnapshotRecord& record);
  ~OpenVolume() override;

  const std::string& name() const override { return name_; }
  std::string volume_id() const override { return id_.Hex(); }
  uint64_t size() const override { return size_.load(); }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return read_only_; }

  Status Read(uint64_t offset, std::span<char> out) override;
  void ReadAsync(uint64_t offset, std::span<char> out, Done done) override;
  bool async_reads() const override { return async_reads_; }
  bool pipe_reads() const override { return pipe_reads_; }
  Status ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) override;
  Status Write(uint64_t offset, std::span<const char> data, bool fua) override;
  bool TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) override;
  Status Trim(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua) override;
  Status Flush() override;
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override;
  Status CreateSnapshot(const std::string& snap) override;
  Status Resize(uint64_t new_size, bool allow_shrink) override;
  Status Close() override;

  // Catalog operations that need the volume held open and drained.
  // `live_children` names the clones of a snapshot that still exist (empty: none).
  Status RemoveSnapshot(const std::string& snap,
                        const std::function<Result<std::vector<std::string>>(const SnapshotEntry&)>& live_children);
  Status Rollback(const std::string& snap);
  const VolumeId& id() const { return id_; }

 private:
  OpenVolume(std::shared_ptr<ObjectStore> store, std::string name, VolumeId id, uint64_t size,
             uint32_t block_size, uint64_t epoch, uint32_t per_chunk, std::vector<ChunkRef> chunks,
             bool read_only);

  // Where [offset, offset+length) falls: calls fn(block, offset in block, length in block, offset in request).
  template <class Fn>
  Status ForEachBlock(uint64_t offset, uint64_t length, Fn&& fn);
  Status CheckRange(uint64_t offset, uint64_t length) const;
  Status CheckWritable() const;
  // The write lock was taken over or its lease lapsed (CheckWritable's lease part, without
  // closed_: a copier thread may ask while Close runs).
  bool LeaseLost() const;
  uint64_t BlockLength(uint64_t block) const;
  bool IsWritable(const Entry& e) const;
  // A partial entry of ours of the current epoch: written in place, granule by granule.
  bool IsOwnPartial(const Entry& e) const;
  // Whether a write into shared block with entry `e` makes it partial instead of copying it.
  bool CanStartPartial(const Entry& e) const;
  // Where the bytes [off, off+len) of block `block` are, in order: one piece, or runs of
  // granules from a partial entry's own object and its base.
  struct Piece {
    std::string object;
    uint64_t off;  // in the block
    uint64_t len;
  };
  std::vector<Piece> Pieces(const Entry& e, uint64_t block, uint64_t off, uint64_t len) const;
  std::mutex& BlockLock(uint64_t block) { return block_locks_[block % block_locks_.size()]; }
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
  Status WriteBlock(uint64_t block, uint64_t off, std::span<const char> data);
  // The part of WriteBlock (ZeroBlock) after a pending copy-up was dealt with.
  Status WriteBlockLocked(uint64_t block, uint64_t off, std::span<const char> data, bool whole);
  Status ZeroBlock(uint64_t block, uint64_t off, uint64_t len, bool may_trim);
  Status ZeroBlockLocked(uint64_t block, uint64_t off, uint64_t len, bool may_trim, bool whole);
  Status ZeroRange(uint64_t offset, uint64_t length, bool may_trim);
  // Zeros the last block's bytes past the end of the volume (a shrink leaves them as they
  // were). Before a grow shows them; before a snapshot, if any is not zero, so a larger clone
  // of it (which shows them without growing) reads zeros there.
  Status ZeroPastEnd();
  Status ZeroStalePastEnd();
  // Makes block `block` a private object of the current epoch holding its current content
  // (copy-up of a shared object, or an empty object for a hole). Returns the object name.
  // REQUIRES: block lock held.
  Result<std::string> MakePrivate(uint64_t block, const Entry& current);
  // Copies block `block` as `from` says into object `to` (a partial one's base granules too).
  Status CopyBlock(uint64_t block, const Entry& from, const std::string& to);
  // Writes `data` at `off` into block `block` whose entry `e` is a partial one of ours or one
  // CanStartPartial allows, without copying the block: the entry becomes (or stays) partial,
  // private once every granule is in its own object. REQUIRES: block lock held.
  Status WritePartial(uint64_t block, const Entry& e, uint64_t off, std::span<const char> data);
  // Gives block `block` a new object of the current epoch, which `fill(name)` creates fresh
  // (replacing any leftover of that name) and fills; the map names it only once that
  // succeeded, so a failure leaves the block as it was. `replaced` is the entry it replaces.
  // REQUIRES: block lock held.
  Status FillNewObject(uint64_t block, const Entry& replaced, const std::function<Status(const std::string&)>& fill);
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
  // IOError once the write lock was lost or its lease could not be renewed in time.
  Status CheckLease() const;

  // ---- deferred copy-up ----
  // A deferred copy-up of one block in progress (state below, under copyup_mu_).
  struct HeldWrite {
    uint64_t off;
    std::string data;
  };
  struct CopyUp {
    enum class State { kQueued, kRunning, kFailed } state = State::kQueued;
    Entry source_entry;  // the shared block's entry, released when the copy replaces it
    std::string target;  // this volume's object of the current epoch
    uint64_t seq = 0;    // start order (Flush finishes the ones started before it)
    // Acknowledged writes, applied in order after each copy attempt. A deque: a copier reads
    // elements outside the mutex while writers append (push_back keeps references valid).
    std::deque<HeldWrite> held;
    uint64_t held_bytes = 0;
  };
  enum class Hold { kHeld, kNoCopyUp, kFull };
  // Adds a write to the held writes of the block's pending copy-up, if there is one and
  // the bounds on held bytes allow. REQUIRES: block lock held.
  Hold HoldForPendingCopyUp(uint64_t block, uint64_t off, std::span<const char> data);
  // Starts a deferred copy-up of shared block `block` (entry `current`) holding this first
  // write. False (nothing started) when the volume holds too much already.
  // REQUIRES: block lock held.
  bool StartCopyUp(uint64_t block, const Entry& current, uint64_t off, std::span<const char> data);
  // Until block `block` has no pending copy-up: waits while a copier runs it, runs it here
  // when it is queued or failed before. Its error if it fails here.
  Status FinishCopyUp(uint64_t block);
  // Claims the block's pending copy-up (waits while someone else runs it): marks it running
  // for the caller to run (FinishCopyUp) or to replace with the whole block's new content
  // (then EndClaim); false when there is none. While claimed, reads and flushes wait for it.
  bool ClaimCopyUp(uint64_t block);
  // Ends a claim. `replaced`: the block's new content is in place, the copy-up and its held
  // writes are moot and forgotten. Else (the replacing write failed) the copy-up stays, as
  // failed, for the next flush or read to retry: what it holds was acknowledged.
  void EndClaim(uint64_t block, bool replaced);
  // Finishes every copy-up started before this call (Flush). The first error.
  Status FinishCopyUpsStartedBefore(uint64_t seq);
  // Copies, applies the held writes and changes the map. REQUIRES: the caller marked the
  // copy-up running (under copyup_mu_); no block lock needed (the copier takes none).
  Status RunCopyUp(uint64_t block);
  // Writes the coalesced held writes into `target`: one after another, or all in flight
  // together on a natively asynchronous store. The first error.
  Status ApplyHeldExtents(const std::string& target, const std::vector<HeldExtent>& extents);
  // Appends a held write to `c` within the bounds (block, volume, process); false if over.
  // REQUIRES: copyup_mu_ held.
  bool AddHeldWrite(CopyUp& c, uint64_t off, std::span<const char> data);
  // Erases a finished or replaced copy-up, gives its bytes back, wakes waiters.
  // REQUIRES: copyup_mu_ held.
  void ForgetCopyUp(std::map<uint64_t, CopyUp>::iterator it);
  bool HasPendingCopyUp(uint64_t block);
  // Runs `task` on a copier thread (started if need be), or here when there are none.
  void RunOnCopier(std::function<void()> task);
  void StartCopiersLocked();  // REQUIRES: copyup_mu_ held
  void CopierLoop();
  void StopCopiers();

  void MarkDirty(const std::string& object);
  // A block object to delete after the next flush persisted the map. Keyed by object name:
  // one block may have an older epoch's object and a trimmed object of ours pending at once.
  void QueueDelete(uint64_t block, std::string object);
  // A new object of this name is being made: its pending delete (of a leftover) is off.
  void CancelDelete(const std::string& object);  // REQUIRES: block lock held
  // Flush without taking the gate. REQUIRES: gate held (either mode).
  Status FlushLocked(bool force_header);
  Status WriteHeader(const std::function<Status(Header&)>& extra);

  void StartLeaseKeeper(std::string owner, int64_t lease_ms);
  void StopLeaseKeeper();

  const std::shared_ptr<ObjectStore> store_;
  const std::string name_;
  const VolumeId id_;
  const uint32_t block_size_;
  const uint32_t per_chunk_;
  const bool read_only_;
  const bool async_reads_;  // the store's data path is natively asynchronous
  const bool pipe_reads_;   // the store splices objects into pipes (ObjectStore::ReadToPipe)
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
  std::mutex flush_mu_;
  // The persisted header lags the chunk table or size: a flush changed them but failed
  // before its header update succeeded. The next flush writes the header. GUARDED_BY(flush_mu_)
  bool header_stale_ = false;
  // A shrink's header, with the new size and the chunk table before its shortened last chunk
  // is written, is not written yet: the next flush writes it before any chunk, so a crash
  // never leaves the old size with that chunk. GUARDED_BY(flush_mu_)
  bool shrink_header_first_ = false;
  // Chunks of ours (older epochs) the chunk table stopped naming, to delete once a header
  // write names the new table. GUARDED_BY(flush_mu_)
  std::vector<std::pair<uint64_t, ChunkRef>> replaced_chunks_;
  // What this volume's snapshots name: decides whether the head's older objects can go.
  SnapshotRefs snapshot_refs_;

  // Deferred copy-up state. Lock order: block lock, then copyup_mu_, then the map's own.
  const int copier_threads_;  // 0: deferred copy-ups run only when someone needs them done
  const bool defer_copy_ups_;
  // Writes into blocks shared with the parent make partial entries (no copy).
  const bool partial_blocks_;
  std::mutex copyup_mu_;
  std::condition_variable copyup_cv_;          // a copy-up finished or failed
  std::condition_variable copier_cv_;          // the queue grew, or the copiers must stop
  std::map<uint64_t, CopyUp> copyups_;         // by block. GUARDED_BY(copyup_mu_)
  std::deque<uint64_t> copy_queue_;            // GUARDED_BY(copyup_mu_)
  std::deque<std::function<void()>> copier_tasks_;  // reads waiting for a copy-up; GUARDED_BY(copyup_mu_)
  uint64_t copyup_seq_ = 0;                    // GUARDED_BY(copyup_mu_)
  uint64_t held_bytes_ = 0;                    // all held writes. GUARDED_BY(copyup_mu_)
  bool copiers_stop_ = false;                  // GUARDED_BY(copyup_mu_)
  std::vector<std::thread> copiers_;           // started with the first deferred copy-up
  std::atomic<int> copyups_pending_{0};        // copyups_.size(), for readers' fast path

  std::mutex dirty_mu_;  // guards the three below
  std::unordered_set<std::string> dirty_objects_;
  struct PendingDelete {
    uint64_t block;
    uint64_t seq;
  };
  std::map<std::string, PendingDelete> pending_deletes_;  // by object name
  uint64_t delete_seq_ = 0;
  // Block objects a flush has deleted so far (counted before each delete). A read that
  // finds its object missing reads again when this moved since it looked at the map: the
  // block may have been trimmed, its object deleted, and written anew under the same name.
  std::atomic<uint64_t> objects_deleted_{0};

  // Write lock lease (read-write heads only).
  std::string lock_owner_;
  std::thread lease_thread_;
  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  bool lease_stop_ = false;
  std::atomic<bool> fenced_{false};  // lost the lock: refuse writes
  // A snapshot's header update failed and the header could not be read after: whether the
  // volume moved to the next epoch is unknown, so nothing may be written (CheckLease).
  std::atomic<bool> uncertain_{false};
  std::string uncertain_cause_;  // the store's error; written once, before uncertain_ is set
  // Until when (steady clock, ms) our lease is known valid: measured from the moment each
  // successful renewal was *sent*, so it never overestimates. Past it, writes are refused
  // even before the keeper finds out someone else took the lock.
  std::atomic<int64_t> lease_valid_until_ms_{0};
  bool closed_ = false;
};

}  // namespace skerry::volume
