#include "volume/open_volume.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>

#include "util/fan_in.h"
#include "util/pipe.h"
#include "util/steady_ms.h"
#include "volume/metadata.h"

namespace skerry::volume {
namespace {
// SKERRY_DEFERRED_COPY_UP: unset or "background" (copier threads do deferred copy-ups),
// "on-demand" (no copier threads: a deferred copy-up runs when a read, trim, flush or the
// bound on held bytes needs it done; the crash tests use it so a seed replays the same
// store calls), "off" (every copy-up before its write returns, as on RADOS).
struct DeferredCopyUpMode {
  bool on;
  int threads;
};
DeferredCopyUpMode DeferredCopyUpFromEnv() {
  const char* v = std::getenv("SKERRY_DEFERRED_COPY_UP");
  std::string_view mode = v ? v : "";
  if (mode == "off") return {false, 0};
  if (mode == "on-demand") return {true, 0};
  return {true, 2};
}

// SKERRY_PARTIAL_BLOCKS=off: the first write into a block a clone shares with its parent
// copies the whole block (as into a snapshot's), instead of making the entry partial.
// For benchmarks and tests that compare the two.
bool PartialBlocksFromEnv() {
  const char* v = std::getenv("SKERRY_PARTIAL_BLOCKS");
  return !(v && std::string_view(v) == "off");
}

// Bytes of acknowledged writes held for deferred copy-ups, per volume and in the whole
// process (a daemon serves many volumes; the NBD server's memory bound covers requests in
// flight, not these); past either a write waits for (or does) its block's copy-up. A block
// also holds at most its own size.
constexpr uint64_t kMaxHeldBytes = 64ull << 20;
constexpr uint64_t kMaxHeldBytesInProcess = 256ull << 20;
std::atomic<uint64_t> held_bytes_in_process{0};

// Counts `n` more held bytes in the process unless that passes the bound.
bool ReserveHeldBytes(uint64_t n) {
  uint64_t now = held_bytes_in_process.load();
  do {
    if (now + n > kMaxHeldBytesInProcess) return false;
  } while (!held_bytes_in_process.compare_exchange_weak(now, now + n));
  return true;
}
}  // namespace

OpenVolume::OpenVolume(std::shared_ptr<ObjectStore> store, std::string name, VolumeId id, uint64_t size,
                       uint32_t block_size, uint64_t epoch, uint32_t per_chunk, std::vector<ChunkRef> chunks,
                       bool read_only)
    : store_(std::move(store)),
      name_(std::move(name)),
      id_(id),
      block_size_(block_size),
      per_chunk_(per_chunk),
      read_only_(read_only),
      async_reads_(store_->capabilities().native_async),
      pipe_reads_(store_->capabilities().pipe_reads),
      size_(size),
      epoch_(epoch),
      snapshot_refs_(*store_, id_),
      copier_threads_(DeferredCopyUpFromEnv().threads),
      // On a natively asynchronous store (RADOS) only with copier threads: an asynchronous
      // read of a block with a pending copy-up is handed to them (ReadBlockAsync), as it must
      // not wait on the caller's thread (a store completion may be that thread).
      defer_copy_ups_(!read_only && DeferredCopyUpFromEnv().on && (!async_reads_ || copier_threads_ > 0)),
      partial_blocks_(!read_only && PartialBlocksFromEnv() && block_size % kGranuleSize == 0) {
  uint64_t blocks = (size + block_size - 1) / block_size;
  map_ = std::make_unique<VolumeMap>(*store_, id_, epoch, blocks, per_chunk, std::move(chunks));
}

std::unique_ptr<OpenVolume> OpenVolume::Head(std::shared_ptr<ObjectStore> store, std::string name,
                                             const Header& h, bool read_only, std::string lock_owner,
                                             int64_t lease_ms) {
  std::unique_ptr<OpenVolume> v(new OpenVolume(std::move(store), std::move(name), h.id, h.size, h.block_size,
                                               h.epoch, h.entries_per_chunk, h.chunks, read_only));
  if (!read_only) v->StartLeaseKeeper(std::move(lock_owner), lease_ms);
  return v;
}

std::unique_ptr<OpenVolume> OpenVolume::Snapshot(std::shared_ptr<ObjectStore> store, std::string name,
                                                 const SnapshotRecord& r) {
  return std::unique_ptr<OpenVolume>(new OpenVolume(std::move(store), std::move(name), r.volume, r.size,
                                                    r.block_size, r.epoch, r.entries_per_chunk, r.chunks, true));
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
  if (fenced_.load()) return Status::IOError(fmt::format("{}: lost its write lock to another owner; refusing writes", name_));
  if (uncertain_.load())
    return Status::IOError(fmt::format("{}: the outcome of a snapshot is unknown ({}); refusing writes until reopened",
                                       name_, uncertain_cause_));
  if (!lock_owner_.empty() && SteadyMs() >= lease_valid_until_ms_.load())
    return Status::IOError(fmt::format("{}: write lock lease could not be renewed in time; refusing writes", name_));
  return Status::OK();
}

uint64_t OpenVolume::BlockLength(uint64_t block) const {
  uint64_t start = block * block_size_;
  return std::min<uint64_t>(block_size_, size_.load() - start);
}

bool OpenVolume::LeaseLost() const { return !CheckLease().ok(); }

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

std::vector<OpenVolume::Piece> OpenVolume::Pieces(const Entry& e, uint64_t block, uint64_t off, uint64_t len) const {
  std::vector<Piece> out;
  if (!e.is_partial()) {
    out.push_back(Piece{EntryObject(e, block), off, len});  // moved in: no copy of the name
    return out;
  }
  // Runs of granules that the own object holds, or the base, clipped to [off, off+len).
  const std::string own = EntryObject(e, block), base = BaseObject(e, block);
  const uint64_t end = off + len;
  for (uint64_t pos = off; pos < end;) {
    const bool mine = e.partial->Has(pos / kGranuleSize);
    uint64_t next = (pos / kGranuleSize + 1) * kGranuleSize;
    while (next < end && e.partial->Has(next / kGranuleSize) == mine) next += kGranuleSize;
    next = std::min(next, end);
    out.push_back(Piece{mine ? own : base, pos, next - pos});
    pos = next;
  }
  return out;
}

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

void OpenVolume::MarkDirty(const std::string& object) {
  if (store_->capabilities().durable_writes) return;
  std::lock_guard lock(dirty_mu_);
  dirty_objects_.insert(object);
}

void OpenVolume::QueueDelete(uint64_t block, std::string object) {
  std::lock_guard lock(dirty_mu_);
  pending_deletes_[std::move(object)] = PendingDelete{block, ++delete_seq_};
}

void OpenVolume::CancelDelete(const std::string& object) {
  std::lock_guard lock(dirty_mu_);
  pending_deletes_.erase(object);
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
  if (alone.ok() && *alone) QueueDelete(block, BlockObject(id_, old.epoch, block));
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

// ---------------------------------------------------------------- reads

template <class FromObject, class FromHole>
Status OpenVolume::ReadBlockVia(uint64_t block, uint64_t off, uint64_t len, FromObject&& from_object,
                                FromHole&& from_hole, int attempt) {
  // Writes held for a deferred copy-up are in no object yet: land them first.
  if (attempt == 0 && copyups_pending_.load() > 0) SKERRY_RETURN_IF_ERROR(FinishCopyUp(block));
  const uint64_t deleted = objects_deleted_.load();
  SKERRY_ASSIGN_OR_RETURN(Entry e, map_->Get(block));
  if (e.is_hole()) return from_hole(off, len);
  for (const Piece& p : Pieces(e, block, off, len)) {
    Status st = from_object(p.object, p.off, p.len);
    if (st.ok()) continue;
    if (!st.IsNotFound()) return st.Prefixed(name_);
    // A concurrent trim may have released the object after we looked (and a write may
    // have made one of the same name since): look again, for the rest of the range.
    SKERRY_ASSIGN_OR_RETURN(Entry again, map_->Get(block));
    if ((again == e && objects_deleted_.load() == deleted) || attempt > 3)
      return Status::Corruption(fmt::format("{}: map points at missing object {}", name_, p.object));
    return ReadBlockVia(block, p.off, off + len - p.off, from_object, from_hole, attempt + 1);
  }
  return Status::OK();
}

Status OpenVolume::ReadBlock(uint64_t block, uint64_t off, std::span<char> out) {
  return ReadBlockVia(
      block, off, out.size(),
      [&](const std::string& object, uint64_t at, uint64_t n) {
        return store_->ReadBlocking(object, at, out.subspan(at - off, n)).status();
      },
      [&](uint64_t at, uint64_t n) {
        std::memset(out.data() + (at - off), 0, n);
        return Status::OK();
      });
}

Status OpenVolume::Read(uint64_t offset, std::span<char> out) {
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, out.size()));
  return ForEachBlock(offset, out.size(), [&](uint64_t b, uint64_t off, uint64_t n, uint64_t at) {
    return ReadBlock(b, off, out.subspan(at, n));
  });
}

Status OpenVolume::ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) {
  if (!pipe_reads_) return Volume::ReadToPipe(offset, length, pipe_fd);
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  // The store reports NotFound before it puts anything in the pipe, so looking at the
  // map again after a concurrent trim (ReadBlockVia) never leaves half a block behind.
  return ForEachBlock(offset, length, [&](uint64_t b, uint64_t off, uint64_t n, uint64_t) {
    // Pieces (of a partial block) go into the pipe in order.
    return ReadBlockVia(
        b, off, n, [&](const std::string& object, uint64_t at, uint64_t len) { return store_->ReadToPipe(object, at, len, pipe_fd); },
        [&](uint64_t, uint64_t len) { return PutZerosInPipe(pipe_fd, len).Prefixed(name_); });
  });
}

FanIn* OpenVolume::StartUnderGate(Done done) {
  // Leave the gate before `done` runs: its caller may then close or destroy the volume.
  return FanIn::Start([gate = &gate_, done = std::move(done)](Status st) {
    gate->LeaveShared();
    done(std::move(st));
  });
}

void OpenVolume::ReadBlockAsync(FanIn* op, uint64_t block, uint64_t off, std::span<char> out, int attempt) {
  // attempt 0 runs on the caller's thread; a retry (attempt > 0) runs on the store's
  // completion thread, which must not take copyup_mu_ (a copier may hold it in a map update
  // that waits for the store) and has no need to: a retry follows a trim, which ended any
  // copy-up of the block.
  if (attempt == 0 && copyups_pending_.load() > 0 && HasPendingCopyUp(block)) {
    // The block's content is the shared object plus held writes until its copy-up is done:
    // read it the blocking way (which waits for the copy-up, or runs it) on a copier thread.
    // Rare: a block's first moments after its first write since a snapshot or clone.
    return RunOnCopier([this, op, block, off, out] { op->Finish(ReadBlock(block, off, out)); });
  }
  const uint64_t deleted = objects_deleted_.load();  // see ReadBlockVia
  Result<Entry> e = map_->Get(block);
  if (!e.ok()) {
    return op->Finish(e.status());
  }
  if (e->is_hole()) {
    std::memset(out.data(), 0, out.size());
    return op->Finish(Status::OK());
  }
  // One store read per piece (several for a partial block), each finishing one count of `op`:
  // the caller counted one for this block.
  std::vector<Piece> pieces = Pieces(*e, block, off, out.size());
  for (size_t i = 1; i < pieces.size(); i++) op->Add();
  auto seen = std::make_shared<const Entry>(std::move(*e));
  for (Piece& p : pieces) {
    std::span<char> part = out.subspan(p.off - off, p.len);
    store_->Read(p.object, p.off, part,
                 [this, op, block, part, attempt, seen, object = p.object, at = p.off, deleted](Result<size_t> n) {
                   if (n.ok()) return op->Finish(Status::OK());
                   if (!n.status().IsNotFound()) return op->Finish(n.status().Prefixed(name_));
                   // A concurrent trim may have released the object after we looked: look
                   // again. The map's chunk is loaded (we just read it), so this does not wait
                   // for the store.
                   Result<Entry> again = map_->Get(block);
                   if (!again.ok() || (*again == *seen && objects_deleted_.load() == deleted) || attempt > 3)
                     return op->Finish(again.ok() ? Status::Corruption(fmt::format("{}: map points at missing object {}",
                                                                                   name_, object))
                                                  : again.status());
                   ReadBlockAsync(op, block, at, part, attempt + 1);
                 });
  }
}

void OpenVolume::ReadAsync(uint64_t offset, std::span<char> out, Done done) {
  if (!async_reads_) return done(Read(offset, out));
  gate_.EnterShared();
  FanIn* op = StartUnderGate(std::move(done));
  Status st = CheckRange(offset, out.size());
  if (st.ok()) {
    st = ForEachBlock(offset, out.size(), [&](uint64_t b, uint64_t off, uint64_t n, uint64_t at) {
      op->Add();
      ReadBlockAsync(op, b, off, out.subspan(at, n), 0);
      return Status::OK();
    });
  }
  op->Finish(std::move(st));  // the starter's count
}

Result<std::vector<Extent>> OpenVolume::Extents(uint64_t offset, uint64_t length) {
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  std::vector<Extent> out;
  Status st = ForEachBlock(offset, length, [&](uint64_t b, uint64_t, uint64_t n, uint64_t at) -> Status {
    SKERRY_ASSIGN_OR_RETURN(Entry e, map_->Get(b));
    bool hole = e.is_hole();
    if (!out.empty() && out.back().hole == hole) {
      out.back().length += n;
    } else {
      out.push_back(Extent{offset + at, n, hole, hole});
    }
    return Status::OK();
  });
  if (!st.ok()) return st;
  return out;
}

// ---------------------------------------------------------------- writes

Result<std::string> OpenVolume::MakePrivate(uint64_t block, const Entry& current) {
  std::string object = BlockObject(id_, epoch_.load(), block);
  if (IsWritable(current)) return object;
  if (current.is_hole()) {
    // A leftover object of this name (a trimmed block whose delete is still pending, or
    // the remains of a crash) must not show through: start from an empty object.
    CancelDelete(object);
    SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(object, 0, {}, /*fresh=*/true));
  } else {
    SKERRY_RETURN_IF_ERROR(CopyBlock(block, current, object));
  }
  // The map names the object from now on, even if the caller's write then fails: the
  // next flush must sync it before persisting that map.
  MarkDirty(object);
  SKERRY_RETURN_IF_ERROR(map_->Set(block, Entry::Private(id_, epoch_.load())));
  ReleaseIfUnshared(block, current);
  return object;
}

Status OpenVolume::CopyBlock(uint64_t block, const Entry& from, const std::string& to) {
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
  std::shared_ptr<const PartialBase> old = e.partial;
  if (start) {
    auto base = std::make_shared<PartialBase>();
    base->owner = e.owner;
    base->epoch = e.epoch;
    base->written.assign((block_size_ / kGranuleSize + 63) / 64, 0);
    old = std::move(base);
  }
  // An edge granule the write covers only in part and the own object lacks is completed from
  // the base, so every granule the write touches ends up whole in the own object.
  const uint64_t G = kGranuleSize, end = off + data.size();
  uint64_t a = off, b = end;
  if (off % G != 0 && !old->Has(off / G)) a = off / G * G;
  if (end % G != 0 && !old->Has(end / G)) b = std::min<uint64_t>((end / G + 1) * G, block_size_);
  std::span<const char> bytes = data;
  std::string buf;
  if (a != off || b != end) {
    const std::string base = BlockObject(old->owner, old->epoch, block);
    buf.resize(b - a);
    if (a != off) SKERRY_RETURN_IF_ERROR(store_->ReadBlocking(base, a, std::span<char>(buf.data(), off - a)).status());
    std::memcpy(buf.data() + (off - a), data.data(), data.size());
    if (b != end) SKERRY_RETURN_IF_ERROR(store_->ReadBlocking(base, end, std::span<char>(buf.data() + (end - a), b - end)).status());
    bytes = std::span<const char>(buf.data(), buf.size());
  }
  if (start) CancelDelete(object);  // a leftover of this name is replaced, not deleted later
  SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(object, a, bytes, /*fresh=*/start));
  // The data first, then the entry that says where it is: a reader sees the base's old bytes
  // or the new ones; and marked dirty before, so a flush persisting the entry syncs them.
  MarkDirty(object);
  // Every granule [a, b) touches is whole in the own object now: written whole, or held
  // there already (an edge the write covers in part is extended to the granule otherwise).
  // Into granules held already: the entry stays as it is.
  if (!start && old->HasAll(a / G, (b - 1) / G + 1)) return Status::OK();
  auto next = std::make_shared<PartialBase>(*old);
  // A bitmap read from the store may be shorter than the block needs (missing words: no
  // granule held; docs/format.md): grown before any bit is set.
  next->written.resize(std::max<size_t>(next->written.size(), (block_size_ / G + 63) / 64));
  for (uint64_t g = a / G; g <= (b - 1) / G; g++) next->written[g / 64] |= uint64_t{1} << (g % 64);
  // Every granule of the block in the own object: a private entry, the base no longer needed.
  const bool full = next->HasAll(0, (BlockLength(block) + G - 1) / G);
  return map_->Set(block, full ? Entry::Private(id_, epoch) : Entry::Partial(id_, epoch, std::move(next)));
}

Status OpenVolume::FillNewObject(uint64_t block, const Entry& replaced,
                                 const std::function<Status(const std::string&)>& fill) {
  std::string object = BlockObject(id_, epoch_.load(), block);
  CancelDelete(object);  // a delete still pending for a leftover of this name is off
  SKERRY_RETURN_IF_ERROR(fill(object));
  MarkDirty(object);  // before the entry: a flush that persists the entry syncs the object
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
  while (copyups_pending_.load() > 0) {
    if (whole) {
      claimed = ClaimCopyUp(block);
      break;
    }
    Hold h = HoldForPendingCopyUp(block, off, data);
    if (h == Hold::kHeld) return Status::OK();
    if (h == Hold::kNoCopyUp) break;
    SKERRY_RETURN_IF_ERROR(FinishCopyUp(block));
  }
  Status st = WriteBlockLocked(block, off, data, whole);
  if (claimed) EndClaim(block, st.ok());
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
    } else if (defer_copy_ups_ && StartCopyUp(block, e, off, data)) {
      return Status::OK();  // held: the block is copied, then written, off this thread
    } else {
      SKERRY_ASSIGN_OR_RETURN(object, MakePrivate(block, e));
      SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(object, off, data));
    }
  }
  MarkDirty(object);
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
      if (st.ok()) MarkDirty(object);  // before `done`: a flush after the reply covers it
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
  if (copyups_pending_.load() > 0) {
    if (whole) claimed = ClaimCopyUp(block);
    else SKERRY_RETURN_IF_ERROR(FinishCopyUp(block));
  }
  Status st = ZeroBlockLocked(block, off, len, may_trim, whole);
  if (claimed) EndClaim(block, st.ok());
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
    MarkDirty(object);
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
  MarkDirty(object);
  return Status::OK();
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

// ---------------------------------------------------------------- deferred copy-up
//
// A partial write into a shared block is held and acknowledged; the copy, the held writes
// and the map change happen off the writer's thread (RunCopyUp). The held writes are applied
// in the order they were acknowledged, before any later write reaches the block directly:
// a writer holds the block lock, and the map names the new object only once nothing is held
// (both under copyup_mu_).

OpenVolume::Hold OpenVolume::HoldForPendingCopyUp(uint64_t block, uint64_t off, std::span<const char> data) {
  std::lock_guard lock(copyup_mu_);
  auto it = copyups_.find(block);
  if (it == copyups_.end()) return Hold::kNoCopyUp;
  return AddHeldWrite(it->second, off, data) ? Hold::kHeld : Hold::kFull;
}

bool OpenVolume::AddHeldWrite(CopyUp& c, uint64_t off, std::span<const char> data) {
  if (c.held_bytes + data.size() > block_size_ || held_bytes_ + data.size() > kMaxHeldBytes ||
      !ReserveHeldBytes(data.size()))
    return false;
  c.held.push_back(HeldWrite{off, std::string(data.begin(), data.end())});
  c.held_bytes += data.size();
  held_bytes_ += data.size();
  return true;
}

void OpenVolume::ForgetCopyUp(std::map<uint64_t, CopyUp>::iterator it) {
  held_bytes_ -= it->second.held_bytes;
  held_bytes_in_process.fetch_sub(it->second.held_bytes);
  copyups_.erase(it);
  copyups_pending_.fetch_sub(1);
  copyup_cv_.notify_all();
}

bool OpenVolume::StartCopyUp(uint64_t block, const Entry& current, uint64_t off, std::span<const char> data) {
  std::lock_guard lock(copyup_mu_);
  CopyUp c;
  if (copiers_stop_ || !AddHeldWrite(c, off, data)) return false;
  c.source_entry = current;
  c.target = BlockObject(id_, epoch_.load(), block);
  c.seq = ++copyup_seq_;
  copyups_.emplace(block, std::move(c));
  copyups_pending_.fetch_add(1);
  if (copier_threads_ > 0) {
    StartCopiersLocked();
    copy_queue_.push_back(block);
    copier_cv_.notify_one();
  }
  return true;
}

Status OpenVolume::RunCopyUp(uint64_t block) {
  std::string target;
  Entry source_entry;
  {
    std::lock_guard lock(copyup_mu_);
    const CopyUp& c = copyups_.at(block);
    target = c.target;
    source_entry = c.source_entry;
  }
  // Whether the source goes once the map names the copy, decided now (it may read a
  // snapshot's map): the delete is queued with the map change, before a flush waiting for
  // this copy-up can return (and a Close stop the copiers).
  Result<bool> alone = HeadAloneNames(block, source_entry);
  const bool release_source = alone.ok() && *alone;
  // A lease that lapsed meanwhile forbids this write like any other; checked again before
  // each batch of held writes and before the map names the copy.
  auto lease_lost = [&] {
    return Status::IOError(fmt::format("{}: write lock lost; held writes of block {} not written", name_, block));
  };
  Status st = LeaseLost() ? lease_lost() : Status::OK();
  // Every attempt starts from a fresh copy and applies all held writes again (they are
  // idempotent in order), so a failure anywhere leaves nothing half done.
  if (st.ok()) st = CopyBlock(block, source_entry, target);
  size_t applied = 0;
  for (;;) {
    HeldWriteOverlay batch;
    size_t batch_end = 0;
    {
      std::lock_guard lock(copyup_mu_);
      auto it = copyups_.find(block);
      CopyUp& c = it->second;
      // Before each batch of held writes too, not only before the map change: a copy-up
      // that keeps taking writes for a while must not go on writing once the lease lapsed.
      if (st.ok() && LeaseLost()) st = lease_lost();
      if (st.ok() && applied == c.held.size()) {
        // Nothing left to hold: from now on the map names the object and writes go there.
        MarkDirty(target);
        st = map_->Set(block, Entry::Private(id_, epoch_.load()));
        if (st.ok()) {
          // No block lock needed: an older epoch's object is never written again, so nobody
          // makes a new object of its name.
          if (release_source) QueueDelete(block, BlockObject(id_, source_entry.epoch, block));
          ForgetCopyUp(it);
          return Status::OK();
        }
      }
      if (!st.ok()) {
        c.state = CopyUp::State::kFailed;  // kept, with its held writes, for a retry
        copyup_cv_.notify_all();
        return st.Prefixed(fmt::format("{}: deferred copy-up of block {} ({} held writes)", name_, block, c.held.size()));
      }
      // The writes held since the last look, as the extents they leave (the deque's
      // elements stay put while writers append).
      for (size_t i = applied; i < c.held.size(); i++) batch.Add(c.held[i].off, c.held[i].data);
      batch_end = c.held.size();
    }
    st = ApplyHeldExtents(target, batch.Extents());
    if (st.ok()) applied = batch_end;
  }
}

Status OpenVolume::ApplyHeldExtents(const std::string& target, const std::vector<HeldExtent>& extents) {
  if (!async_reads_) {
    for (const HeldExtent& e : extents) SKERRY_RETURN_IF_ERROR(store_->WriteBlocking(target, e.off, e.data));
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
    store_->Write(target, e.off, e.data, /*fresh=*/false, [&](Status st) {
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

bool OpenVolume::ClaimCopyUp(uint64_t block) {
  std::unique_lock lock(copyup_mu_);
  for (;;) {
    auto it = copyups_.find(block);
    if (it == copyups_.end()) return false;
    if (it->second.state == CopyUp::State::kRunning) {
      copyup_cv_.wait(lock);
      continue;
    }
    it->second.state = CopyUp::State::kRunning;  // no copier, reader or flush touches it now
    return true;
  }
}

void OpenVolume::EndClaim(uint64_t block, bool replaced) {
  std::lock_guard lock(copyup_mu_);
  auto it = copyups_.find(block);
  if (replaced) {
    // A copy an earlier failed attempt left behind was either overwritten by the new content
    // (the same object) or, after a trim, is named by nothing: at most an unreferenced leftover.
    ForgetCopyUp(it);
  } else {
    it->second.state = CopyUp::State::kFailed;
    copyup_cv_.notify_all();
  }
}

Status OpenVolume::FinishCopyUp(uint64_t block) {
  // Queued (no copier got to it yet) or failed before: do it here rather than wait.
  return ClaimCopyUp(block) ? RunCopyUp(block) : Status::OK();
}

Status OpenVolume::FinishCopyUpsStartedBefore(uint64_t seq) {
  std::unique_lock lock(copyup_mu_);
  for (;;) {
    bool running = false;
    uint64_t claim = UINT64_MAX;
    for (auto& [block, c] : copyups_) {
      if (c.seq >= seq) continue;
      if (c.state == CopyUp::State::kRunning) {
        running = true;
      } else {
        c.state = CopyUp::State::kRunning;
        claim = block;
        break;
      }
    }
    if (claim != UINT64_MAX) {
      lock.unlock();
      SKERRY_RETURN_IF_ERROR(RunCopyUp(claim));
      lock.lock();
      continue;
    }
    // A copier's failure turns its copy-up back to kFailed, which the loop then retries.
    if (!running) return Status::OK();
    copyup_cv_.wait(lock);
  }
}

bool OpenVolume::HasPendingCopyUp(uint64_t block) {
  std::lock_guard lock(copyup_mu_);
  return copyups_.count(block) != 0;
}

void OpenVolume::StartCopiersLocked() {
  if (copiers_.empty()) {
    for (int i = 0; i < copier_threads_; i++) copiers_.emplace_back([this] { CopierLoop(); });
  }
}

void OpenVolume::RunOnCopier(std::function<void()> task) {
  {
    std::lock_guard lock(copyup_mu_);
    if (copier_threads_ > 0 && !copiers_stop_) {
      StartCopiersLocked();
      copier_tasks_.push_back(std::move(task));
      copier_cv_.notify_one();
      return;
    }
  }
  task();  // no copiers (on-demand mode, or closing): here
}

void OpenVolume::CopierLoop() {
  std::unique_lock lock(copyup_mu_);
  for (;;) {
    copier_cv_.wait(lock, [&] { return copiers_stop_ || !copy_queue_.empty() || !copier_tasks_.empty(); });
    if (copiers_stop_) return;
    if (!copier_tasks_.empty()) {  // first: a reader waits for each
      std::function<void()> task = std::move(copier_tasks_.front());
      copier_tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    uint64_t block = copy_queue_.front();
    copy_queue_.pop_front();
    auto it = copyups_.find(block);
    if (it == copyups_.end() || it->second.state != CopyUp::State::kQueued) continue;  // done by a waiter
    it->second.state = CopyUp::State::kRunning;
    lock.unlock();
    // A failure stays with the copy-up: the next flush (or read, trim) retries and reports it.
    (void)RunCopyUp(block);
    lock.lock();
  }
}

void OpenVolume::StopCopiers() {
  {
    std::lock_guard lock(copyup_mu_);
    copiers_stop_ = true;
  }
  copier_cv_.notify_all();
  for (std::thread& t : copiers_) t.join();
  copiers_.clear();
  // Reads handed to the copiers hold the gate, which Close holds exclusively before it gets
  // here: none should be left, but if one is, it runs (while the copy-ups it may need exist).
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard lock(copyup_mu_);
    tasks.swap(copier_tasks_);
  }
  for (auto& task : tasks) task();
  // What is still held now is dropped (Close reports why); its bytes go back to the process.
  std::lock_guard lock(copyup_mu_);
  held_bytes_in_process.fetch_sub(held_bytes_);
  held_bytes_ = 0;
  copyups_.clear();
  copy_queue_.clear();
  copyups_pending_.store(0);
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
  std::lock_guard flush(flush_mu_);
  // A size change must reach the header even if this flush fails before writing it.
  if (force_header) header_stale_ = true;
  // 0. Writes acknowledged before this flush and held for a deferred copy-up land in their
  // objects (and the map names those) first. One that cannot fails this flush, and every
  // later one until it lands: none may succeed over a lost write.
  uint64_t started;
  {
    std::lock_guard lock(copyup_mu_);
    started = copyup_seq_;
  }
  SKERRY_RETURN_IF_ERROR(FinishCopyUpsStartedBefore(started + 1));
  // A shrink's header goes before its shortened chunk (Resize): until it is written, every
  // flush writes it first.
  if (shrink_header_first_) {
    SKERRY_RETURN_IF_ERROR(CheckLease());
    SKERRY_RETURN_IF_ERROR(WriteHeader(nullptr).Prefixed(name_));
    shrink_header_first_ = false;
    header_stale_ = false;
  }
  // Captured before the map is encoded: these holes are in the map we persist below.
  std::map<std::string, PendingDelete> deletes;
  {
    std::lock_guard lock(dirty_mu_);
    deletes = pending_deletes_;
  }
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
    std::vector<std::string> objects;
    {
      std::lock_guard lock(dirty_mu_);
      objects.assign(dirty_objects_.begin(), dirty_objects_.end());
      dirty_objects_.clear();
    }
    if (objects.empty()) return CheckLease();
    Status st = store_->SyncBlocking(objects);
    if (!st.ok()) {
      std::lock_guard lock(dirty_mu_);
      dirty_objects_.insert(objects.begin(), objects.end());
    }
    // The sync may have taken long: the chunks are written after this only under the lease.
    return st.ok() ? CheckLease() : st;
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
  for (auto& [object, pending] : deletes) {
    std::lock_guard lock(BlockLock(pending.block));
    {
      std::lock_guard dl(dirty_mu_);
      auto it = pending_deletes_.find(object);
      // Written anew (and maybe trimmed again) since we captured it: not ours to delete now.
      if (it == pending_deletes_.end() || it->second.seq != pending.seq) continue;
      pending_deletes_.erase(it);
    }
    objects_deleted_.fetch_add(1);
    Status st = store_->Delete(object);
    if (!st.ok() && !st.IsNotFound()) {
      QueueDelete(pending.block, object);  // still owed: the next flush tries again
      return st.Prefixed(name_);
    }
  }
  return Status::OK();
}

Status OpenVolume::Flush() {
  SharedGate gate(gate_);
  if (read_only_) return Status::OK();
  SKERRY_RETURN_IF_ERROR(CheckWritable());
  return FlushLocked(false);
}

// ---------------------------------------------------------------- management

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
  SKERRY_RETURN_IF_ERROR(FinishCopyUpsStartedBefore(UINT64_MAX));
  // An earlier resize whose header never landed is finished first: a grow must not write
  // its larger size over a shrink's chunk not yet shortened, and a retry of a failed resize
  // (whose size this volume already has) must not return OK before it is durable.
  bool header_pending;
  {
    std::lock_guard flush(flush_mu_);
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
      std::lock_guard flush(flush_mu_);
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
  auto collect = [&](VolumeMap& m, const std::vector<ChunkRef>& table, std::set<std::string>* into,
                     bool erase) -> Status {
    for (uint64_t c = 0; c < table.size(); c++)
      if (table[c].owner == id_) {
        std::string n = ChunkObject(table[c], c);
        erase ? (void)into->erase(n) : (void)into->insert(n);
      }
    return m.ForEach([&](uint64_t block, const Entry& e) {
      if (!e.has_own_object() || e.owner != id_) return;  // a partial entry's base is not ours
      std::string n = BlockObject(e.owner, e.epoch, block);
      erase ? (void)into->erase(n) : (void)into->insert(n);
    });
  };
  {
    VolumeMap m(*store_, id_, rec.epoch, (rec.size + block_size_ - 1) / block_size_, rec.entries_per_chunk, rec.chunks);
    SKERRY_RETURN_IF_ERROR(collect(m, rec.chunks, &candidates, false));
  }
  for (const SnapshotEntry& other : h.snapshots) {
    if (other.id == target->id || candidates.empty()) continue;
    SKERRY_ASSIGN_OR_RETURN(SnapshotRecord o, ReadSnapshotRecord(*store_, id_, other.id));
    VolumeMap m(*store_, id_, o.epoch, (o.size + block_size_ - 1) / block_size_, o.entries_per_chunk, o.chunks);
    SKERRY_RETURN_IF_ERROR(collect(m, o.chunks, &candidates, true));
  }
  SKERRY_RETURN_IF_ERROR(collect(*map_, map_->chunk_table(), &candidates, true));
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

Status OpenVolume::Close() {
  ExclusiveGate gate(gate_);
  if (closed_) return Status::OK();
  // Without a valid lease nothing may be written, not even the final flush: report it.
  Status st = read_only_ ? Status::OK() : CheckWritable();
  if (st.ok() && !read_only_) st = FlushLocked(false);
  bool still_ours = !read_only_ && !fenced_.load();
  // The copiers work on this object: stopped before it goes. Copy-ups still pending here
  // (the flush failed or was not allowed) are dropped; Close reports that error.
  StopCopiers();
  closed_ = true;
  StopLeaseKeeper();
  if (still_ours) {
    Status u = store_->Unlock(LockObject(id_), lock_owner_);
    if (st.ok() && !u.ok() && !u.IsNotFound()) st = u;
  }
  return st;
}

// ---------------------------------------------------------------- lease

void OpenVolume::StartLeaseKeeper(std::string owner, int64_t lease_ms) {
  lock_owner_ = std::move(owner);
  // The catalog took the lock just before opening us; count the lease from now, less a
  // margin for the time that took.
  lease_valid_until_ms_.store(SteadyMs() + lease_ms * 9 / 10);
  lease_thread_ = std::thread([this, lease_ms] {
    std::unique_lock lock(lease_mu_);
    while (!lease_stop_) {
      // Renew at a third of the lease so two missed renewals still leave time.
      if (lease_cv_.wait_for(lock, std::chrono::milliseconds(lease_ms / 3), [&] { return lease_stop_; })) break;
      int64_t sent = SteadyMs();
      Status st = store_->Lock(LockObject(id_), lock_owner_, lease_ms);
      if (st.ok()) lease_valid_until_ms_.store(sent + lease_ms);
      else if (st.code() == Code::kBusy) fenced_.store(true);  // someone took it over: stop writing
    }
  });
}

void OpenVolume::StopLeaseKeeper() {
  if (!lease_thread_.joinable()) return;
  {
    std::lock_guard lock(lease_mu_);
    lease_stop_ = true;
  }
  lease_cv_.notify_all();
  lease_thread_.join();
}

}  // namespace skerry::volume
