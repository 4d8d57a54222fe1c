#include "volume/open_volume.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>

#include "util/fan_in.h"
#include "volume/metadata.h"

namespace skerry::volume {

OpenVolume::OpenVolume(std::shared_ptr<ObjectStore> store, std::string name, VolumeId id, uint64_t size,
                       uint32_t block_size, uint64_t epoch, uint32_t per_chunk, std::vector<ChunkRef> chunks,
                       bool read_only, const VolumeOptions& options)
    : store_(std::move(store)),
      name_(std::move(name)),
      id_(id),
      block_size_(block_size),
      per_chunk_(per_chunk),
      read_only_(read_only),
      async_reads_(store_->capabilities().native_async),
      pipe_reads_(store_->capabilities().pipe_reads),
      partial_blocks_(!read_only && options.partial_blocks && block_size % kGranuleSize == 0),
      size_(size),
      epoch_(epoch),
      snapshot_refs_(*store_, id_),
      reaper_(*store_) {
  uint64_t blocks = (size + block_size - 1) / block_size;
  map_ = std::make_unique<VolumeMap>(*store_, id_, epoch, blocks, per_chunk, std::move(chunks));
  const int copiers = options.copy_up == CopyUpMode::kBackground ? options.copier_threads : 0;
  // On a natively asynchronous store (RADOS) only with copier threads: an asynchronous read
  // of a block with a pending copy-up is handed to them (ReadBlockAsync), as it must not wait
  // on the caller's thread (a store completion may be that thread).
  if (!read_only && options.copy_up != CopyUpMode::kOff && (!async_reads_ || copiers > 0))
    copy_ups_ = std::make_unique<CopyUpQueue>(static_cast<CopyUpHost&>(*this), name_, block_size_, copiers, options.held_bytes,
                                              options.max_held_bytes_per_volume);
}

std::unique_ptr<OpenVolume> OpenVolume::Head(std::shared_ptr<ObjectStore> store, std::string name,
                                             const Header& h, bool read_only, std::string lock_owner,
                                             int64_t lease_ms, const VolumeOptions& options) {
  std::unique_ptr<OpenVolume> v(new OpenVolume(std::move(store), std::move(name), h.id, h.size, h.block_size,
                                               h.epoch, h.entries_per_chunk, h.chunks, read_only, options));
  if (!read_only) {
    v->lease_ = std::make_unique<LeaseKeeper>(*v->store_, LockObject(h.id), std::move(lock_owner), lease_ms,
                                              options.clock);
    v->lease_->Start();
  }
  return v;
}

std::unique_ptr<OpenVolume> OpenVolume::Snapshot(std::shared_ptr<ObjectStore> store, std::string name,
                                                 const SnapshotRecord& r, const VolumeOptions& options) {
  return std::unique_ptr<OpenVolume>(new OpenVolume(std::move(store), std::move(name), r.volume, r.size,
                                                    r.block_size, r.epoch, r.entries_per_chunk, r.chunks, true,
                                                    options));
}

OpenVolume::~OpenVolume() { Close(); }

// ---------------------------------------------------------------- helpers

Status OpenVolume::CheckRange(uint64_t offset, uint64_t length) const {
  uint64_t size = size_.load();
  if (offset > size || length > size - offset)
    return Status::InvalidArgument(fmt::format("range {}+{} is beyond the end of {} ({} bytes)", offset, length, name_, size));
  return Status::OK();
}

Status OpenVolume::CheckWritable() const {
  if (read_only_) return Status::ReadOnly(fmt::format("{} is read-only", name_));
  SKERRY_RETURN_IF_ERROR(CheckLease());
  if (closed_) return Status::InvalidArgument(fmt::format("{} is closed", name_));
  return Status::OK();
}

Status OpenVolume::CheckLease() const {
  if (lease_) SKERRY_RETURN_IF_ERROR(lease_->Check(name_));
  if (uncertain_.load())
    return Status::IOError(fmt::format("{}: the outcome of a snapshot is unknown ({}); refusing writes until reopened",
                                       name_, uncertain_cause_));
  return Status::OK();
}

uint64_t OpenVolume::BlockLength(uint64_t block) const {
  uint64_t start = block * block_size_;
  return std::min<uint64_t>(block_size_, size_.load() - start);
}

bool OpenVolume::IsWritable(const Entry& e) const {
  return e.kind == Entry::Kind::kPrivate && e.owner == id_ && e.epoch == epoch_.load();
}

bool OpenVolume::IsOwnPartial(const Entry& e) const {
  return e.is_partial() && e.owner == id_ && e.epoch == epoch_.load();
}

bool OpenVolume::CanStartPartial(const Entry& e) const {
  // Only over another volume's object (a clone's parent's, frozen by a snapshot that cannot
  // be removed while this clone exists): nothing this volume does ever deletes a base.
  return partial_blocks_ && e.kind == Entry::Kind::kPrivate && e.owner != id_;
}


Result<bool> OpenVolume::HeadAloneNames(uint64_t block, const Entry& e) {
  // Objects of other volumes (a clone's parent, a partial entry's base) and content-addressed
  // ones are not ours to free; ours of the current epoch no snapshot can name (snapshots froze
  // older epochs).
  if (!e.has_own_object() || e.owner != id_) return false;
  if (e.epoch == epoch_.load()) return true;
  SKERRY_ASSIGN_OR_RETURN(bool named, snapshot_refs_.NamesBlock(block, e));
  return !named;
}

Result<bool> OpenVolume::HeadAloneNames(uint64_t c, const ChunkRef& ref) {
  if (ref.owner != id_) return false;
  if (ref.epoch == epoch_.load()) return true;
  SKERRY_ASSIGN_OR_RETURN(bool named, snapshot_refs_.NamesChunk(c, ref));
  return !named;
}

void OpenVolume::ReleaseIfUnshared(uint64_t block, const Entry& old) {
  Result<bool> alone = HeadAloneNames(block, old);
  if (alone.ok() && *alone) reaper_.QueueDelete(block, BlockObject(id_, old.epoch, block));
}

Status OpenVolume::DeleteUnsharedChunks(const std::vector<std::pair<uint64_t, ChunkRef>>& chunks) {
  for (const auto& [c, ref] : chunks) {
    SKERRY_ASSIGN_OR_RETURN(bool alone, HeadAloneNames(c, ref));
    if (!alone) continue;
    Status st = store_->Delete(ChunkObject(ref, c));
    if (!st.ok() && !st.IsNotFound()) return st.Prefixed(name_);
  }
  return Status::OK();
}

// ---------------------------------------------------------------- writes

Result<std::string> OpenVolume::MakePrivate(uint64_t block, const Entry& current) {
  std::string object = BlockObject(id_, epoch_.load(), block);
  if (IsWritable(current)) return object;
  if (current.is_hole()) {
    // A leftover object of this name (a trimmed block whose delete is still pending, or
    // the remains of a crash) must not show through: start from an empty object.
    reaper_.CancelDelete(object);
    SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(object, 0, {}, /*fresh=*/true));
  } else {
    SKERRY_RETURN_IF_ERROR(CopyBlockTo(block, current, object));
  }
  // The map names the object from now on, even if the caller's write then fails: the
  // next flush must sync it before persisting that map.
  reaper_.MarkDirty(object);
  SKERRY_RETURN_IF_ERROR(map_->Set(block, Entry::Private(id_, epoch_.load())));
  ReleaseIfUnshared(block, current);
  return object;
}

Status OpenVolume::CopyBlockTo(uint64_t block, const Entry& from, const std::string& to) {
  // Copy-up: the store copies the shared object (reflink or in-store copy).
  SKERRY_RETURN_IF_ERROR(store_->CopyBlocking(EntryObject(from, block), to));
  if (!from.is_partial()) return Status::OK();
  // A partial block's other granules come from its base, run by run.
  const std::string base = BaseObject(from, block);
  std::string buf;
  for (const Piece& p : Pieces(from, block, 0, block_size_)) {
    if (p.object != base) continue;  // the own object's granules came with the copy
    buf.resize(p.len);
    SKERRY_RETURN_IF_ERROR(store_->ReadBlocking(p.object, p.off, std::span<char>(buf.data(), buf.size())).status());
    SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(to, p.off, buf));
  }
  return Status::OK();
}

Status OpenVolume::WritePartial(uint64_t block, const Entry& e, uint64_t off, std::span<const char> data) {
  const uint64_t epoch = epoch_.load();
  const std::string object = BlockObject(id_, epoch, block);
  // Starting: the entry was the parent's; the base is that object, the own one starts empty.
  const bool start = !e.is_partial();
  std::shared_ptr<const PartialBase> held = start ? StartPartial(e, block_size_) : e.partial;
  // Every granule the write touches ends up whole in the own object: an edge granule it
  // covers only in part, and the own object lacks, is completed from the base.
  const uint64_t end = off + data.size();
  const auto [a, b] = WholeGranules(*held, off, end, block_size_);
  std::span<const char> bytes = data;
  std::string buf;
  if (a != off || b != end) {
    const std::string base = BlockObject(held->owner, held->epoch, block);
    buf.resize(b - a);
    if (a != off) SKERRY_RETURN_IF_ERROR(store_->ReadBlocking(base, a, std::span<char>(buf.data(), off - a)).status());
    std::memcpy(buf.data() + (off - a), data.data(), data.size());
    if (b != end) SKERRY_RETURN_IF_ERROR(store_->ReadBlocking(base, end, std::span<char>(buf.data() + (end - a), b - end)).status());
    bytes = std::span<const char>(buf.data(), buf.size());
  }
  if (start) reaper_.CancelDelete(object);  // a leftover of this name is replaced, not deleted later
  SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(object, a, bytes, /*fresh=*/start));
  // The data first, then the entry that says where it is: a reader sees the base's old bytes
  // or the new ones; and marked dirty before, so a flush persisting the entry syncs them.
  reaper_.MarkDirty(object);
  // Into granules held already: the entry stays as it is.
  if (!start && held->HasAll(a / kGranuleSize, (b - 1) / kGranuleSize + 1)) return Status::OK();
  std::shared_ptr<PartialBase> next = WithGranules(*held, a, b, block_size_);
  // Every granule of the block in the own object: a private entry, the base no longer needed.
  const bool full = HoldsWholeBlock(*next, BlockLength(block));
  return map_->Set(block, full ? Entry::Private(id_, epoch) : Entry::Partial(id_, epoch, std::move(next)));
}

Status OpenVolume::FillNewObject(uint64_t block, const Entry& replaced,
                                 const std::function<Status(const std::string&)>& fill) {
  std::string object = BlockObject(id_, epoch_.load(), block);
  reaper_.CancelDelete(object);  // a delete still pending for a leftover of this name is off
  SKERRY_RETURN_IF_ERROR(fill(object));
  reaper_.MarkDirty(object);  // before the entry: a flush that persists the entry syncs the object
  SKERRY_RETURN_IF_ERROR(map_->Set(block, Entry::Private(id_, epoch_.load())));
  ReleaseIfUnshared(block, replaced);
  return Status::OK();
}

Status OpenVolume::WriteBlock(uint64_t block, uint64_t off, std::span<const char> data) {
  std::lock_guard lock(BlockLock(block));
  // A write covering the whole block needs nothing of the old content.
  const bool whole = off == 0 && data.size() == BlockLength(block);
  // A pending copy-up of this block holds this write too (after the earlier ones), unless
  // the bounds are reached: then it is finished first. A whole-block write replaces it and
  // all it holds, once it succeeded. Checked before the map is read: with the block lock
  // held, no copy-up of this block can start after the check.
  bool claimed = false;
  while (copy_ups_ && copy_ups_->any_pending()) {
    if (whole) {
      claimed = copy_ups_->Claim(block);
      break;
    }
    CopyUpQueue::Hold h = copy_ups_->HoldIfPending(block, off, data);
    if (h == CopyUpQueue::Hold::kHeld) return Status::OK();
    if (h == CopyUpQueue::Hold::kNoCopyUp) break;
    SKERRY_RETURN_IF_ERROR(copy_ups_->Finish(block));
  }
  Status st = WriteBlockLocked(block, off, data, whole);
  if (claimed) copy_ups_->EndClaim(block, st.ok());
  return st;
}

Status OpenVolume::WriteBlockLocked(uint64_t block, uint64_t off, std::span<const char> data, bool whole) {
  SKERRY_ASSIGN_OR_RETURN(Entry e, map_->Get(block));
  std::string object = BlockObject(id_, epoch_.load(), block);
  if (IsWritable(e)) {
    SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(object, off, data));
  } else if (IsOwnPartial(e)) {
    // In place, even over the whole block: the persisted map may name this object as partial,
    // and a fresh object (truncated first) could lose its granules in a crash.
    return WritePartial(block, e, off, data);
  } else {
    if (whole || e.is_hole()) {
      return FillNewObject(block, e, [&](const std::string& fresh) {
        return store_->WriteBlocking(fresh, off, data, /*fresh=*/true);
      });
    } else if (CanStartPartial(e)) {
      return WritePartial(block, e, off, data);  // no copy: the rest reads from the parent
    } else if (copy_ups_ && copy_ups_->Start(block, e, object, off, data)) {
      return Status::OK();  // held: the block is copied, then written, off this thread
    } else {
      SKERRY_ASSIGN_OR_RETURN(object, MakePrivate(block, e));
      SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(object, off, data));
    }
  }
  reaper_.MarkDirty(object);
  return Status::OK();
}

bool OpenVolume::PinForAsyncWrite(uint64_t block, uint64_t off, uint64_t len) {
  std::lock_guard lock(BlockLock(block));
  std::optional<Entry> e = map_->GetIfLoaded(block);
  if (!e) return false;
  if (IsOwnPartial(*e)) {
    // Into granules the own object holds already: in place, no map change.
    if (!e->partial->HasAll(off / kGranuleSize, (off + len - 1) / kGranuleSize + 1)) return false;
  } else if (!IsWritable(*e)) {
    return false;
  }
  StripeWrites(block).fetch_add(1);
  return true;
}

void OpenVolume::UnpinAsyncWrite(uint64_t block) {
  std::atomic<int>& n = StripeWrites(block);
  if (n.fetch_sub(1) == 1) n.notify_all();
}

void OpenVolume::WaitForAsyncWrites(uint64_t block) {
  std::atomic<int>& n = StripeWrites(block);
  for (int seen = n.load(); seen != 0; seen = n.load()) n.wait(seen);
}

bool OpenVolume::TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) {
  // Only where the store completes on its own threads (elsewhere Write is as fast), and
  // only for a few blocks at a time (a larger write goes to a worker as before).
  constexpr uint64_t kMaxBlocks = 8;
  if (!async_reads_ || data.empty()) return false;
  gate_.EnterShared();
  uint64_t first = offset / block_size_;
  uint64_t last = first;
  bool ok = CheckWritable().ok() && CheckRange(offset, data.size()).ok();
  if (ok) {
    last = (offset + data.size() - 1) / block_size_;
    ok = last - first < kMaxBlocks;
  }
  // Every block must already be ours: a hole or a shared block needs the blocking path
  // (a new object or a copy-up, then a map change). Counted now, under each block's lock,
  // so a trim cannot release an object this write is about to write.
  uint64_t pinned = first;
  for (; ok && pinned <= last; pinned++) {
    const uint64_t start = pinned == first ? offset % block_size_ : 0;
    const uint64_t end = pinned == last ? (offset + data.size() - 1) % block_size_ + 1 : block_size_;
    ok = PinForAsyncWrite(pinned, start, end - start);
  }
  if (!ok) {
    for (uint64_t b = first; b + 1 < pinned; b++) UnpinAsyncWrite(b);
    gate_.LeaveShared();
    return false;
  }
  FanIn* op = StartUnderGate(std::move(done));
  const uint64_t epoch = epoch_.load();
  ForEachBlock(offset, data.size(), [&](uint64_t b, uint64_t off, uint64_t n, uint64_t at) {
    op->Add();
    std::string object = BlockObject(id_, epoch, b);
    store_->Write(object, off, data.subspan(at, n), /*fresh=*/false, [this, op, b, object](Status st) {
      if (st.ok()) reaper_.MarkDirty(object);  // before `done`: a flush after the reply covers it
      UnpinAsyncWrite(b);
      op->Finish(st.ok() ? std::move(st) : st.Prefixed(name_));
    });
    return Status::OK();
  });
  op->Finish(Status::OK());  // the starter's count
  return true;
}

Status OpenVolume::Write(uint64_t offset, std::span<const char> data, bool fua) {
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, data.size()));
  SKERRY_RETURN_IF_ERROR(ForEachBlock(offset, data.size(), [&](uint64_t b, uint64_t off, uint64_t n, uint64_t at) {
    return WriteBlock(b, off, data.subspan(at, n));
  }));
  if (fua) return FlushLocked(false);
  return Status::OK();
}

Status OpenVolume::ZeroBlock(uint64_t block, uint64_t off, uint64_t len, bool may_trim) {
  std::lock_guard lock(BlockLock(block));
  bool whole = off == 0 && len == BlockLength(block);
  // Held writes come before this zero: land them (the copier takes no block lock), or,
  // when the zero replaces the whole block, forget them once it succeeded (no copy needed;
  // when space is short a trim must not need one).
  bool claimed = false;
  if (copy_ups_ && copy_ups_->any_pending()) {
    if (whole) claimed = copy_ups_->Claim(block);
    else SKERRY_RETURN_IF_ERROR(copy_ups_->Finish(block));
  }
  Status st = ZeroBlockLocked(block, off, len, may_trim, whole);
  if (claimed) copy_ups_->EndClaim(block, st.ok());
  return st;
}

Status OpenVolume::ZeroBlockLocked(uint64_t block, uint64_t off, uint64_t len, bool may_trim, bool whole) {
  SKERRY_ASSIGN_OR_RETURN(Entry e, map_->Get(block));
  if (e.is_hole() && may_trim) return Status::OK();  // already reads as zeros
  if (whole && may_trim) {
    // An asynchronous write still in flight would bring the object back after its delete.
    if (IsWritable(e) || IsOwnPartial(e)) WaitForAsyncWrites(block);
    // The block becomes a hole. Its object (if ours) is deleted only after the map that
    // no longer points at it is persisted, so a crash never leaves a dangling entry. The
    // entry first, then the delete: a flush that sees the delete encodes the map after it,
    // so the map it persists has the hole.
    SKERRY_RETURN_IF_ERROR(map_->Set(block, Entry{}));
    ReleaseIfUnshared(block, e);
    return Status::OK();
  }
  if (whole && IsOwnPartial(e)) {
    // In place (as a write, above): the object may be named, partial, by the persisted map.
    const std::string object = EntryObject(e, block);
    SKERRY_RETURN_IF_ERROR(store_->ZeroBlocking(object, off, len));
    reaper_.MarkDirty(object);
    return map_->Set(block, Entry::Private(id_, epoch_.load()));
  }
  if (whole && !IsWritable(e)) {
    // Zeros over a whole shared block (or hole) need none of its content: a new object,
    // named by the map only once the zeros are in it. A failure then leaves the block as
    // it was, shared, with a pending copy-up (the caller's claim) still in charge of it;
    // naming the object first let later writes go straight into an object the retried
    // copy-up then copies over.
    return FillNewObject(block, e, [&](const std::string& fresh) {
      SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(fresh, 0, {}, /*fresh=*/true));
      return store_->ZeroBlocking(fresh, off, len);
    });
  }
  if (IsOwnPartial(e) || CanStartPartial(e)) {
    // Zeros into part of a partial block (or one it shares with its parent): written like data.
    std::string zeros(len, '\0');
    return WritePartial(block, e, off, zeros);
  }
  SKERRY_ASSIGN_OR_RETURN(std::string object, MakePrivate(block, e));
  SKERRY_RETURN_IF_ERROR(store_->ZeroBlocking(object, off, len));
  reaper_.MarkDirty(object);
  return Status::OK();
}

Status OpenVolume::ZeroRange(uint64_t offset, uint64_t length, bool may_trim) {
  return ForEachBlock(offset, length, [&](uint64_t b, uint64_t off, uint64_t n, uint64_t) {
    return ZeroBlock(b, off, n, may_trim);
  });
}

Status OpenVolume::Trim(uint64_t offset, uint64_t length) {
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  return ZeroRange(offset, length, /*may_trim=*/true);
}

Status OpenVolume::WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua) {
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  SKERRY_RETURN_IF_ERROR(ZeroRange(offset, length, may_trim));
  if (fua) return FlushLocked(false);
  return Status::OK();
}

// ---------------------------------------------------------------- deferred copy-up steps

Status OpenVolume::MayWrite(uint64_t block) {
  // A lease that lapsed meanwhile forbids a held write like any other.
  if (!CheckLease().ok())
    return Status::IOError(fmt::format("{}: write lock lost; held writes of block {} not written", name_, block));
  return Status::OK();
}

Status OpenVolume::CopyBlock(CopyUpJob& job) {
  // Whether the source goes once the map names the copy, decided now (it may read a
  // snapshot's map): the delete is queued with the map change, before a flush waiting for
  // this copy-up can return (and a Close stop the copiers).
  Result<bool> alone = HeadAloneNames(job.block, job.source);
  job.release_source = alone.ok() && *alone;
  return CopyBlockTo(job.block, job.source, job.target);
}

Status OpenVolume::WriteHeld(const CopyUpJob& job, const std::vector<HeldExtent>& extents) {
  if (!async_reads_) {
    for (const HeldExtent& e : extents) SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(job.target, e.off, e.data));
    return Status::OK();
  }
  // A store with its own asynchronous I/O (RADOS): the extents do not overlap, so they may
  // all be in flight together; a bounded number at a time.
  constexpr size_t kMaxInFlight = 32;
  std::mutex mu;
  std::condition_variable cv;
  size_t in_flight = 0;
  Status first_error;
  for (const HeldExtent& e : extents) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < kMaxInFlight; });
      if (!first_error.ok()) break;
      in_flight++;
    }
    store_->Write(job.target, e.off, e.data, /*fresh=*/false, [&](Status st) {
      std::lock_guard lock(mu);
      if (!st.ok() && first_error.ok()) first_error = std::move(st);
      in_flight--;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
  return first_error;
}

Status OpenVolume::Land(const CopyUpJob& job) {
  reaper_.MarkDirty(job.target);
  SKERRY_RETURN_IF_ERROR(map_->Set(job.block, Entry::Private(id_, epoch_.load())));
  // No block lock needed: an older epoch's object is never written again, so nobody makes a
  // new object of its name.
  if (job.release_source) reaper_.QueueDelete(job.block, BlockObject(id_, job.source.epoch, job.block));
  return Status::OK();
}

// ---------------------------------------------------------------- flush

Status OpenVolume::WriteHeader(const std::function<Status(Header&)>& extra) {
  std::vector<ChunkRef> table = map_->chunk_table();
  uint64_t size = size_.load();
  uint64_t epoch = epoch_.load();
  return UpdateHeader(*store_, id_, [&](Header& h) -> Status {
    // This open volume owns size, epoch and chunk table; others (clones) may have changed
    // snapshot children meanwhile, which the compare-and-swap loop keeps.
    h.size = size;
    h.epoch = epoch;
    h.chunks = table;
    return extra ? extra(h) : Status::OK();
  });
}

Status OpenVolume::FlushLocked(bool force_header) {
  if (read_only_) return Status::OK();
  MutexLock flush(&flush_mu_);
  // A size change must reach the header even if this flush fails before writing it.
  if (force_header) header_stale_ = true;
  // 0. Writes acknowledged before this flush and held for a deferred copy-up land in their
  // objects (and the map names those) first. One that cannot fails this flush, and every
  // later one until it lands: none may succeed over a lost write.
  if (copy_ups_) SKERRY_RETURN_IF_ERROR(copy_ups_->FinishStartedUpTo(copy_ups_->last_started()));
  // A shrink's header goes before its shortened chunk (Resize): until it is written, every
  // flush writes it first.
  if (shrink_header_first_) {
    SKERRY_RETURN_IF_ERROR(CheckLease());
    SKERRY_RETURN_IF_ERROR(WriteHeader(nullptr).Prefixed(name_));
    shrink_header_first_ = false;
    header_stale_ = false;
  }
  // Captured before the map is encoded: these holes are in the map we persist below.
  const ObjectReaper::Deletes deletes = reaper_.PendingDeletes();
  // 1. Data of completed writes to stable storage, and 2. the map, which points only at
  // objects that are. The map is encoded first and the dirty set read after: every entry in
  // it names an object marked dirty before the entry was set (writes concurrent with this
  // flush included), so the sync covers them all.
  // The lease again before each step that writes metadata (the map's chunks, the header,
  // deletes): a flush can take long (a sync of much dirty data), and once the lease has
  // lapsed another owner may be writing this volume.
  SKERRY_RETURN_IF_ERROR(CheckLease());
  bool table_changed = false;
  std::vector<std::pair<uint64_t, ChunkRef>> replaced;
  Status persisted = map_->Persist(&table_changed, &replaced, [&]() -> Status {
    SKERRY_RETURN_IF_ERROR(reaper_.SyncDirty());
    // The sync may have taken long: the chunks are written after this only under the lease.
    return CheckLease();
  });
  // The in-memory table already names the chunks written so far: remember that the header
  // must follow, until a header write succeeds (a later Persist reports no change).
  if (table_changed) header_stale_ = true;
  replaced_chunks_.insert(replaced_chunks_.end(), replaced.begin(), replaced.end());
  SKERRY_RETURN_IF_ERROR(persisted.Prefixed(name_));
  if (header_stale_) {
    SKERRY_RETURN_IF_ERROR(CheckLease());
    SKERRY_RETURN_IF_ERROR(WriteHeader(nullptr).Prefixed(name_));
    header_stale_ = false;
  }
  // 3. Objects the persisted map and header no longer point at: chunks of older epochs
  // the table replaced (unless a snapshot names them), then blocks.
  if (!deletes.empty() || !replaced_chunks_.empty()) SKERRY_RETURN_IF_ERROR(CheckLease());
  while (!replaced_chunks_.empty()) {  // one by one: a failure keeps the rest for the next flush
    SKERRY_RETURN_IF_ERROR(DeleteUnsharedChunks({replaced_chunks_.back()}));
    replaced_chunks_.pop_back();
  }
  return reaper_.DeleteCaptured(deletes, [this](uint64_t block) -> std::mutex& { return BlockLock(block); })
      .Prefixed(name_);
}

Status OpenVolume::Flush() {
  SharedGate gate(gate_);
  if (read_only_) return Status::OK();
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  return FlushLocked(false);
}

// ---------------------------------------------------------------- close

Status OpenVolume::Close() {
  ExclusiveGate gate(gate_);
  if (closed_) return Status::OK();
  // Without a valid lease nothing may be written, not even the final flush: report it.
  Status st = read_only_ ? Status::OK() : CheckWritable();
  if (st.ok() && !read_only_) st = FlushLocked(false);
  bool still_ours = lease_ && !lease_->fenced();
  // The copiers work on this object: stopped before it goes. Copy-ups still pending here
  // (the flush failed or was not allowed) are dropped; Close reports that error.
  if (copy_ups_) copy_ups_->Stop();
  closed_ = true;
  if (lease_) lease_->Stop();
  if (still_ours) {
    Status u = store_->Unlock(LockObject(id_), lease_->owner());
    if (st.ok() && !u.ok() && !u.IsNotFound()) st = u;
  }
  return st;
}

}  // namespace skerry::volume
