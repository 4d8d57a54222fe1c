// StoreCatalog: skerry::Catalog over one ObjectStore (see include/skerry/volume.h).
//
// Each operation is ordered so that a crash at any point leaves either the old state or
// the new one visible, plus at worst unreferenced objects that `skerry check` reports
// (docs/crash-contract.md).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>

#include "skerry/volume.h"
#include "util/memory_budget.h"
#include "volume/handoff_channel.h"
#include "volume/handoff_volume.h"
#include "volume/metadata.h"
#include "volume/open_volume.h"

namespace skerry {
namespace {

using volume::ChunkCount;
using volume::Directory;
using volume::DirectoryEntry;
using volume::Header;
using volume::OpenVolume;
using volume::SnapshotEntry;
using volume::SnapshotRecord;
using volume::VolumeId;

// Unique per open, even within one process: two opens of a volume in one process are two
// writers and must exclude each other like any others.
std::string DefaultOwner() {
  static std::atomic<uint64_t> counter{0};
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return fmt::format("skerry@{}:{}#{}", host, getpid(), ++counter);
}

// The budget of held bytes that every catalog of the process shares unless given another.
std::shared_ptr<MemoryBudget> ProcessHeldBytes() {
  static const auto budget = std::make_shared<MemoryBudget>(256ull << 20);
  return budget;
}

using OwnerIsGone = std::function<bool(const std::string&)>;

int64_t NowUnixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Takes volume `id`'s write lock for `owner`. Busy, naming the holder, when another owner holds
// it, unless `gone` proves that owner dead.
Status LockVolume(ObjectStore& store, const std::string& name, const VolumeId& id, const std::string& owner,
                  int64_t lease_ms, const OwnerIsGone& gone) {
  Status st;
  if (store.capabilities().fences_lock_holders) {
    // Taking over a lapsed lease (its holder's host died, or it was cut off or paused) fences
    // that holder first, as rbd does: a holder that was only partitioned must not write after.
    // `now` before the look: a holder whose lease end is not known (its record is written
    // just after its lock is taken, and cleared just before it is released) reads as ending
    // at the time of the look, and must not count as lapsed.
    const int64_t now = NowUnixMs();
    Result<LockInfo> last = store.GetLock(volume::LockObject(id));
    if (last.ok() && last->owner != owner && last->expires_unix_ms < now) {
      Status fenced = store.BreakLock(volume::LockObject(id), last->owner, /*fence=*/true);
      // NotSupported: a lease an older skerry wrote, which names no client to fence.
      if (!fenced.ok() && !fenced.IsNotFound() && fenced.code() != Code::kBusy &&
          fenced.code() != Code::kNotSupported)
        return fenced;
    } else if (last.ok() && last->owner != owner) {
      // Held, by the record. Not even tried: the lease could lapse between that look and
      // the Lock, which would then take it over unfenced. A holder that releases clears its
      // record first, so the next look sees it free (or lapsed, and fences).
      st = Status::Busy(fmt::format("lock '{}' is held by '{}' for another {} ms", volume::LockObject(id),
                                    last->owner, std::max<int64_t>(0, last->expires_unix_ms - NowUnixMs())));
    }
  }
  if (st.ok()) st = store.Lock(volume::LockObject(id), owner, lease_ms);
  if (st.code() == Code::kBusy && gone) {
    // A dead holder's lock (a restarted daemon's predecessor) is broken now, not waited out.
    // Its own objects need no fencing: the process is gone. Broken only if still that owner's.
    Result<LockInfo> holder = store.GetLock(volume::LockObject(id));
    if (holder.ok() && holder->owner != owner && gone(holder->owner)) {
      Status broken = store.BreakLock(volume::LockObject(id), holder->owner, /*fence=*/false);
      if (broken.ok() || broken.IsNotFound()) st = store.Lock(volume::LockObject(id), owner, lease_ms);
    }
  }
  if (st.code() == Code::kBusy)
    return Status::Busy(fmt::format("volume '{}' is open for writing elsewhere ({})", name, st.message()));
  return st;
}

// Locks volume `id` and opens its head read-write from the header as it is now.
Result<std::unique_ptr<OpenVolume>> OpenWriter(const std::shared_ptr<ObjectStore>& store, const VolumeOptions& vo,
                                               const std::string& name, const VolumeId& id, const std::string& owner,
                                               int64_t lease_ms, const OwnerIsGone& gone) {
  SKERRY_RETURN_IF_ERROR(LockVolume(*store, name, id, owner, lease_ms, gone));
  Result<Header> h = volume::ReadHeader(*store, id);
  if (!h.ok()) {
    store->Unlock(volume::LockObject(id), owner);
    return h.status();
  }
  return OpenVolume::Head(store, name, *h, false, owner, lease_ms, vo);
}

class StoreCatalog final : public Catalog {
 public:
  StoreCatalog(std::shared_ptr<ObjectStore> store, VolumeOptions options)
      : store_(std::move(store)), options_(std::move(options)) {}

  ObjectStore& store() override { return *store_; }

  Status Create(const std::string& name, uint64_t size, uint32_t block_size) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    SKERRY_RETURN_IF_ERROR(ValidateVolumeSize(size));
    SKERRY_RETURN_IF_ERROR(ValidateBlockSize(block_size));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    if (dir.Find(name)) return Status::AlreadyExists(fmt::format("volume '{}' already exists", name));
    Header h;
    h.id = VolumeId::Random();
    h.size = size;
    h.block_size = block_size;
    h.created_unix_ms = volume::NowUnixMs();
    h.chunks.resize(ChunkCount(h.block_count(), h.entries_per_chunk));
    // Header first, invisible until the directory names it.
    SKERRY_RETURN_IF_ERROR(store_->Create(volume::HeaderObject(h.id), volume::EncodeHeader(h)));
    bool maybe_visible = false;
    return Publish(name, h.id, VolumeId{}, &maybe_visible);
  }

  Result<std::vector<VolumeInfo>> List(bool with_usage) override {
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    std::vector<VolumeInfo> out;
    for (const DirectoryEntry& e : dir.entries) {
      SKERRY_ASSIGN_OR_RETURN(VolumeInfo info, Describe(dir, e.name, e.id, with_usage));
      out.push_back(std::move(info));
    }
    return out;
  }

  Result<VolumeInfo> Info(const std::string& spec, bool with_usage) override {
    std::string name, snap;
    SKERRY_RETURN_IF_ERROR(SplitSpec(spec, &name, &snap));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    SKERRY_ASSIGN_OR_RETURN(VolumeInfo info, Describe(dir, name, id, with_usage && snap.empty()));
    if (!snap.empty()) {
      auto it = std::find_if(info.snapshots.begin(), info.snapshots.end(), [&](auto& s) { return s.name == snap; });
      if (it == info.snapshots.end()) return Status::NotFound(fmt::format("snapshot '{}@{}' does not exist", name, snap));
      info.snapshot = *it;
      info.size = it->size;
      if (with_usage) {
        SKERRY_ASSIGN_OR_RETURN(SnapshotRecord rec, volume::ReadSnapshotRecord(*store_, id, it->id));
        SKERRY_ASSIGN_OR_RETURN(uint64_t used, CountAllocated(id, rec.epoch, rec.size, rec.block_size,
                                                              rec.entries_per_chunk, rec.chunks));
        info.allocated_blocks = used;
      }
    }
    return info;
  }

  Status Remove(const std::string& name) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    SKERRY_ASSIGN_OR_RETURN(Header h, volume::ReadHeader(*store_, id));
    SKERRY_RETURN_IF_ERROR(RefuseIfCloned(name, h, dir));
    // Hold the write lock so nobody is writing it while it disappears.
    std::string owner = DefaultOwner();
    SKERRY_RETURN_IF_ERROR(LockOrExplain(name, id, owner, 60'000));
    Status st = volume::UpdateDirectory(*store_, [&](Directory& d) -> Status {
      auto it = std::find_if(d.entries.begin(), d.entries.end(), [&](auto& e) { return e.name == name; });
      if (it == d.entries.end() || it->id != id) return Status::NotFound(fmt::format("volume '{}' does not exist", name));
      // Again in the update itself: a clone registered since the look above and published
      // by now is in `d` (one published later finds its parent gone and fails).
      SKERRY_ASSIGN_OR_RETURN(Header now, volume::ReadHeader(*store_, id));
      SKERRY_RETURN_IF_ERROR(RefuseIfCloned(name, now, d));
      d.entries.erase(it);
      return Status::OK();
    });
    if (!st.ok()) {
      store_->Unlock(volume::LockObject(id), owner);
      return st;
    }
    // Invisible now; free its objects. Everything it owns is named "v.<id>.".
    SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> objects, store_->List(volume::VolumePrefix(id)));
    std::string header = volume::HeaderObject(id), lock = volume::LockObject(id);
    std::erase_if(objects, [&](const std::string& o) { return o == header || o == lock; });
    SKERRY_RETURN_IF_ERROR(store_->DeleteMany(objects));
    if (!h.parent_id.IsZero()) {
      Status p = volume::UpdateHeader(*store_, h.parent_id, [&](Header& parent) -> Status {
        for (SnapshotEntry& s : parent.snapshots) std::erase(s.children, id);
        return Status::OK();
      });
      if (!p.ok() && !p.IsNotFound()) return p;
    }
    SKERRY_RETURN_IF_ERROR(store_->Delete(header));
    Status u = store_->Delete(lock);
    return u.IsNotFound() ? Status::OK() : u;
  }

  Status Rename(const std::string& from, const std::string& to) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(from).Prefixed("volume"));
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(to).Prefixed("new name"));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, from));
    // The write lock: a daemon that has the volume open under its old name would otherwise
    // open it a second time under the new one, two maps of one volume flushing over each other.
    std::string owner = DefaultOwner();
    SKERRY_RETURN_IF_ERROR(LockOrExplain(from, id, owner, 60'000));
    Status st = volume::UpdateDirectory(*store_, [&](Directory& d) -> Status {
      if (d.Find(to)) return Status::AlreadyExists(fmt::format("volume '{}' already exists", to));
      auto it = std::find_if(d.entries.begin(), d.entries.end(), [&](auto& e) { return e.name == from; });
      if (it == d.entries.end() || it->id != id)
        return Status::NotFound(fmt::format("volume '{}' does not exist", from));
      it->name = to;
      return Status::OK();
    });
    Status u = store_->Unlock(volume::LockObject(id), owner);
    if (!st.ok()) return st;
    return u.IsNotFound() ? Status::OK() : u;
  }

  Status Resize(const std::string& name, uint64_t new_size, bool allow_shrink) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeSize(new_size));
    SKERRY_ASSIGN_OR_RETURN(auto v, Open(name, {}));
    SKERRY_RETURN_IF_ERROR(v->Resize(new_size, allow_shrink));
    return v->Close();
  }

  Status CreateSnapshot(const std::string& name, const std::string& snap) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(snap).Prefixed("snapshot"));
    SKERRY_ASSIGN_OR_RETURN(auto v, Open(name, {}));
    SKERRY_RETURN_IF_ERROR(v->CreateSnapshot(snap));
    return v->Close();
  }

  Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& name) override {
    SKERRY_ASSIGN_OR_RETURN(VolumeInfo info, Info(name, false));
    return info.snapshots;
  }

  Status RemoveSnapshot(const std::string& name, const std::string& snap) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(snap).Prefixed("snapshot"));
    SKERRY_ASSIGN_OR_RETURN(auto v, OpenHead(name));
    Status st = v->RemoveSnapshot(snap, [&](const SnapshotEntry& s) -> Result<std::vector<std::string>> {
      SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
      return LiveChildren(dir, s);
    });
    Status c = v->Close();
    return st.ok() ? c : st;
  }

  Status Rollback(const std::string& name, const std::string& snap) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(snap).Prefixed("snapshot"));
    SKERRY_ASSIGN_OR_RETURN(auto v, OpenHead(name));
    Status st = v->Rollback(snap);
    Status c = v->Close();
    return st.ok() ? c : st;
  }

  Status Clone(const std::string& name, const std::string& snap, const std::string& new_name,
               std::optional<uint64_t> size) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(snap).Prefixed("snapshot"));
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(new_name).Prefixed("clone"));
    if (size) SKERRY_RETURN_IF_ERROR(ValidateVolumeSize(*size));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    if (dir.Find(new_name)) return Status::AlreadyExists(fmt::format("volume '{}' already exists", new_name));
    SKERRY_ASSIGN_OR_RETURN(VolumeId parent, Lookup(dir, name));
    SKERRY_ASSIGN_OR_RETURN(Header ph, volume::ReadHeader(*store_, parent));
    const SnapshotEntry* s = ph.FindSnapshot(snap);
    if (!s) return Status::NotFound(fmt::format("snapshot '{}@{}' does not exist", name, snap));
    SKERRY_ASSIGN_OR_RETURN(SnapshotRecord rec, volume::ReadSnapshotRecord(*store_, parent, s->id));
    uint64_t new_size = size.value_or(rec.size);
    if (new_size < rec.size)
      return Status::InvalidArgument(fmt::format("clone size {} is smaller than the snapshot ({} bytes)", new_size, rec.size));
    Header h;
    h.id = VolumeId::Random();
    h.size = new_size;
    h.block_size = rec.block_size;
    h.entries_per_chunk = rec.entries_per_chunk;
    h.created_unix_ms = volume::NowUnixMs();
    h.parent_id = parent;
    h.parent_snap_id = rec.id;
    // The clone's map is the snapshot's chunks, shared: O(chunks), no data and no entries copied.
    h.chunks = rec.chunks;
    h.chunks.resize(ChunkCount(h.block_count(), h.entries_per_chunk));
    // 1. Register the child on the parent's snapshot, so the snapshot cannot be removed under us.
    SKERRY_RETURN_IF_ERROR(volume::UpdateHeader(*store_, parent, [&](Header& cur) -> Status {
      for (SnapshotEntry& e : cur.snapshots)
        if (e.id == rec.id) {
          e.children.push_back(h.id);
          return Status::OK();
        }
      return Status::NotFound(fmt::format("snapshot '{}@{}' was removed", name, snap));
    }));
    auto unregister = [&] {
      volume::UpdateHeader(*store_, parent, [&](Header& cur) -> Status {
        for (SnapshotEntry& e : cur.snapshots) std::erase(e.children, h.id);
        return Status::OK();
      });
    };
    // 2. The clone's header, 3. its name.
    Status st = store_->Create(volume::HeaderObject(h.id), volume::EncodeHeader(h));
    if (!st.ok()) {
      unregister();
      return st;
    }
    bool maybe_visible = false;
    st = Publish(new_name, h.id, parent, &maybe_visible);
    Status published = st;
    if (!st.ok()) {
      // A clone that may be in the directory keeps its place among the snapshot's children,
      // and still goes through step 4: a removal may have missed it.
      if (!maybe_visible) {
        unregister();
        return st;
      }
    }
    // 4. Confirm the snapshot still has us. A removal that looked for live clones in the
    // directory before step 3 did not see this one and may have gone ahead: then the snapshot
    // is gone, and the clone takes its name back and fails. This update also changes the
    // header, so a removal that has not yet written it must read it and the directory again,
    // and then finds the clone.
    st = volume::UpdateHeader(*store_, parent, [&](Header& cur) -> Status {
      for (const SnapshotEntry& e : cur.snapshots)
        if (e.id == rec.id && std::find(e.children.begin(), e.children.end(), h.id) != e.children.end())
          return Status::OK();
      return Status::Conflict(fmt::format("snapshot '{}@{}' was removed while it was being cloned", name, snap));
    });
    if (!st.ok()) {
      Status unnamed = volume::UpdateDirectory(*store_, [&](Directory& d) -> Status {
        std::erase_if(d.entries, [&](const DirectoryEntry& e) { return e.id == h.id; });
        return Status::OK();
      });
      // The header goes only once no name points at it: a name without a header would be
      // worse than a clone left in place.
      if (unnamed.ok()) {
        (void)store_->Delete(volume::HeaderObject(h.id));
        unregister();
      }
    }
    return st.ok() ? published : st;
  }

  Result<std::unique_ptr<Volume>> Open(const std::string& spec, const OpenOptions& options) override {
    std::string name, snap;
    SKERRY_RETURN_IF_ERROR(SplitSpec(spec, &name, &snap));
    if (snap.empty() && !options.read_only) {
      const int64_t lease_ms = options.lease_ms > 0 ? options.lease_ms : options_.lease_ms;
      if (options.handoff == Handoff::kCooperative) return OpenCooperative(name, options, lease_ms);
      SKERRY_ASSIGN_OR_RETURN(auto v, OpenHead(name, options.owner, lease_ms, options.owner_is_gone));
      return std::unique_ptr<Volume>(std::move(v));
    }
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    SKERRY_ASSIGN_OR_RETURN(Header h, volume::ReadHeader(*store_, id));
    if (snap.empty()) return std::unique_ptr<Volume>(OpenVolume::Head(store_, name, h, true, "", 0, options_));
    const SnapshotEntry* s = h.FindSnapshot(snap);
    if (!s) return Status::NotFound(fmt::format("snapshot '{}@{}' does not exist", name, snap));
    SKERRY_ASSIGN_OR_RETURN(SnapshotRecord rec, volume::ReadSnapshotRecord(*store_, id, s->id));
    return std::unique_ptr<Volume>(OpenVolume::Snapshot(store_, spec, rec, options_));
  }

  Result<VolumeLockState> LockState(const std::string& name) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    VolumeLockState state;
    Result<LockInfo> holder = store_->GetLock(volume::LockObject(id));
    if (holder.ok()) state.holder = *holder;
    else if (!holder.status().IsNotFound()) return holder.status();
    // Any age: an operator wants to see a request left over too (a writer ignores it).
    SKERRY_ASSIGN_OR_RETURN(auto request, volume::HandoffChannel(*store_, id).Pending(std::numeric_limits<int64_t>::max() / 2));
    state.handoff_requester = request.requester;
    state.handoff_asked_unix_ms = request.asked_unix_ms;
    return state;
  }

  Status BreakLock(const std::string& name, const std::string& owner, bool fence) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    return store_->BreakLock(volume::LockObject(id), owner, fence)
        .Prefixed(fmt::format("volume '{}'", name));
  }

  Result<LockInfo> LockHolder(const std::string& name) override {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    return store_->GetLock(volume::LockObject(id));
  }

 private:
  Result<std::unique_ptr<OpenVolume>> OpenHead(const std::string& name, std::string owner = "",
                                               int64_t lease_ms = 0, const OwnerIsGone& gone = nullptr) {
    if (lease_ms <= 0) lease_ms = options_.lease_ms;
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    if (owner.empty()) owner = DefaultOwner();
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    return OpenWriter(store_, options_, name, id, owner, lease_ms, gone);
  }

  // A cooperative open (HandoffVolume): a writer, or a standby when another owner writes.
  Result<std::unique_ptr<Volume>> OpenCooperative(const std::string& name, const OpenOptions& options,
                                                  int64_t lease_ms) {
    SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
    const std::string owner = options.owner.empty() ? DefaultOwner() : options.owner;
    SKERRY_ASSIGN_OR_RETURN(Directory dir, volume::ReadDirectory(*store_));
    SKERRY_ASSIGN_OR_RETURN(VolumeId id, Lookup(dir, name));
    // By id from now on, and with what outlives this catalog: the open volume may.
    volume::HandoffVolume::Opener opener;
    opener.writer = [store = store_, vo = options_, name, id, owner, lease_ms, gone = options.owner_is_gone] {
      return OpenWriter(store, vo, name, id, owner, lease_ms, gone);
    };
    opener.reader = [store = store_, vo = options_, name, id]() -> Result<std::unique_ptr<OpenVolume>> {
      SKERRY_ASSIGN_OR_RETURN(Header h, volume::ReadHeader(*store, id));
      return OpenVolume::Head(store, name, h, true, "", 0, vo);
    };
    SKERRY_ASSIGN_OR_RETURN(auto v, volume::HandoffVolume::Open(store_, name, id, owner, std::move(opener), options_,
                                                               options.on_handoff));
    return std::unique_ptr<Volume>(std::move(v));
  }

  Status LockOrExplain(const std::string& name, const VolumeId& id, const std::string& owner, int64_t lease_ms) {
    return LockVolume(*store_, name, id, owner, lease_ms, nullptr);
  }

  // Names volume `id` in the directory; a clone only while its parent is still there (a
  // removal of the parent takes its name in the same kind of update, so one of them sees the other).
  // On failure the header is deleted only when the name is known not to be there: a store may
  // report an error after its update landed (the directory store renamed, then its directory
  // fsync failed; a RADOS timeout after the write), and a name without its header would be
  // worse than a header nothing names. *maybe_visible: the name may be in the directory.
  Status Publish(const std::string& name, const VolumeId& id, const VolumeId& parent, bool* maybe_visible) {
    bool refused = false;  // by the change below, not by the store
    Status st = volume::UpdateDirectory(*store_, [&](Directory& d) -> Status {
      refused = true;
      if (d.Find(name)) return Status::AlreadyExists(fmt::format("volume '{}' already exists", name));
      if (!parent.IsZero() && std::none_of(d.entries.begin(), d.entries.end(),
                                           [&](const DirectoryEntry& e) { return e.id == parent; }))
        return Status::Conflict(fmt::format("the volume to clone was removed while '{}' was being made", name));
      refused = false;
      d.entries.push_back(DirectoryEntry{name, id});
      return Status::OK();
    });
    *maybe_visible = st.ok();
    if (st.ok() || refused) {
      if (!st.ok()) store_->Delete(volume::HeaderObject(id));
      return st;
    }
    auto dir = volume::ReadDirectory(*store_);
    // By id: the name may have been renamed or removed since it landed.
    bool named = dir.ok() && std::any_of(dir->entries.begin(), dir->entries.end(),
                                         [&](const DirectoryEntry& e) { return e.id == id; });
    if (!dir.ok() || named) {
      *maybe_visible = true;
      return st.Prefixed(dir.ok() ? fmt::format("volume '{}' was created, but the store reported an error", name)
                                  : fmt::format("volume '{}' may have been created", name));
    }
    store_->Delete(volume::HeaderObject(id));
    return st;
  }

  static Result<VolumeId> Lookup(const Directory& dir, const std::string& name) {
    const DirectoryEntry* e = dir.Find(name);
    if (!e) return Status::NotFound(fmt::format("volume '{}' does not exist", name));
    return e->id;
  }

  // Busy, naming them, when clones in `dir` depend on a snapshot of volume `name`.
  static Status RefuseIfCloned(const std::string& name, const Header& h, const Directory& dir) {
    for (const SnapshotEntry& s : h.snapshots) {
      std::vector<std::string> kids = LiveChildren(dir, s);
      if (!kids.empty())
        return Status::Busy(fmt::format("volume '{}' has clones of snapshot '{}': {}; remove them first", name,
                                        s.name, Join(kids)));
    }
    return Status::OK();
  }

  static std::vector<std::string> LiveChildren(const Directory& dir, const SnapshotEntry& s) {
    std::vector<std::string> out;
    for (const VolumeId& c : s.children)
      if (const DirectoryEntry* e = dir.FindId(c)) out.push_back(e->name);
    return out;
  }

  static std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
  }

  Result<uint64_t> CountAllocated(const VolumeId& id, uint64_t epoch, uint64_t size, uint32_t bs, uint32_t per_chunk,
                                  const std::vector<volume::ChunkRef>& chunks) {
    volume::VolumeMap m(*store_, id, epoch, (size + bs - 1) / bs, per_chunk, chunks);
    uint64_t n = 0;
    SKERRY_RETURN_IF_ERROR(m.ForEach([&](uint64_t, const volume::Entry&) { n++; }));
    return n;
  }

  Result<VolumeInfo> Describe(const Directory& dir, const std::string& name, const VolumeId& id, bool with_usage) {
    SKERRY_ASSIGN_OR_RETURN(Header h, volume::ReadHeader(*store_, id));
    VolumeInfo info;
    info.name = name;
    info.id = id.Hex();
    info.size = h.size;
    info.block_size = h.block_size;
    info.epoch = h.epoch;
    info.created_unix_ms = h.created_unix_ms;
    if (!h.parent_id.IsZero()) {
      const DirectoryEntry* p = dir.FindId(h.parent_id);
      std::string snap = fmt::format("#{}", h.parent_snap_id);
      if (p) {
        Result<Header> ph = volume::ReadHeader(*store_, h.parent_id);
        if (ph.ok())
          if (const SnapshotEntry* s = ph->FindSnapshotById(h.parent_snap_id)) snap = s->name;
      }
      info.parent = fmt::format("{}@{}", p ? p->name : h.parent_id.Hex(), snap);
    }
    for (const SnapshotEntry& s : h.snapshots) {
      SnapshotInfo si;
      si.id = s.id;
      si.name = s.name;
      si.size = s.size;
      si.created_unix_ms = s.created_unix_ms;
      si.children = LiveChildren(dir, s);
      info.snapshots.push_back(std::move(si));
    }
    if (with_usage) {
      SKERRY_ASSIGN_OR_RETURN(uint64_t used, CountAllocated(id, h.epoch, h.size, h.block_size, h.entries_per_chunk, h.chunks));
      info.allocated_blocks = used;
    }
    return info;
  }

  std::shared_ptr<ObjectStore> store_;
  const VolumeOptions options_;
};

}  // namespace

Result<std::unique_ptr<Catalog>> Catalog::Open(std::shared_ptr<ObjectStore> store, const VolumeOptions& given) {
  if (!store) return Status::InvalidArgument("no store");
  // Fail early on a corrupt directory rather than on the first operation.
  SKERRY_RETURN_IF_ERROR(volume::ReadDirectory(*store).status());
  VolumeOptions options = given;
  if (!options.clock) options.clock = Clock::Real();
  if (!options.held_bytes) options.held_bytes = ProcessHeldBytes();
  if (options.copy_up == CopyUpMode::kOnDemand) options.copier_threads = 0;
  return std::unique_ptr<Catalog>(new StoreCatalog(std::move(store), std::move(options)));
}

}  // namespace skerry
