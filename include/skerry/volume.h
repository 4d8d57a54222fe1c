// Volumes: VM disks as maps of fixed-size blocks over an ObjectStore.
//
// Catalog is the set of volumes in one store and every management operation on them
// (create, snapshot, clone, resize, ...). Volume is one volume (or snapshot) opened
// for I/O. The on-disk format is specified in docs/format.md; the crash contract in
// docs/crash-contract.md.
//
// Names of volumes and snapshots: 1..100 characters from [A-Za-z0-9_.-], not starting
// with '.' or '-'. A snapshot is addressed as "volume@snap".
//
// Thread-safety: Catalog methods may be called concurrently (and from several
// processes: every metadata update is a compare-and-swap in the store). A Volume's
// I/O methods may be called concurrently from many threads; I/O to overlapping ranges
// in flight at the same time has no defined order, as on any disk.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "skerry/clock.h"
#include "skerry/object_store.h"
#include "skerry/status.h"

namespace skerry {

class MemoryBudget;  // util/memory_budget.h

inline constexpr uint32_t kMinBlockSize = 64 * 1024;
inline constexpr uint32_t kMaxBlockSize = 64 * 1024 * 1024;
inline constexpr uint32_t kDefaultBlockSize = 4 * 1024 * 1024;
inline constexpr uint64_t kSectorSize = 512;  // volume sizes are multiples of this
inline constexpr uint64_t kMaxVolumeSize = 1ull << 56;  // 64 PiB

struct SnapshotInfo {
  uint64_t id = 0;
  std::string name;
  uint64_t size = 0;
  int64_t created_unix_ms = 0;
  std::vector<std::string> children;  // names of clones made from this snapshot
};

struct VolumeInfo {
  std::string name;
  std::string id;  // 32 hex digits, never changes (rename keeps it)
  uint64_t size = 0;
  uint32_t block_size = 0;
  uint64_t epoch = 0;
  int64_t created_unix_ms = 0;
  std::string parent;  // "volume@snap" this was cloned from, empty if none
  std::vector<SnapshotInfo> snapshots;
  // Filled only when asked (it reads the whole map): blocks that hold data.
  std::optional<uint64_t> allocated_blocks;
  std::optional<SnapshotInfo> snapshot;  // set when Info was asked for "volume@snap"
};

// One run of a volume's address space with the same allocation state.
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;  // not allocated in the map (reads as zeros)
  bool zero = false;  // known to read as zeros
};

// The write lock of a volume as `skerry lock ls` shows it.
struct VolumeLockState {
  std::optional<LockInfo> holder;  // absent: nobody holds it (an expired lease still shows)
  std::string handoff_requester;   // a standby asking the holder to hand over; empty: none
  int64_t handoff_asked_unix_ms = 0;
};

// How a catalog's volumes behave once open. Set once, at Catalog::Open, from skerryd's config
// or the CLI's flags; tests set them directly. Nothing in the library reads the environment.
enum class CopyUpMode {
  // The first write into a block shared with a snapshot is held and acknowledged; copier
  // threads copy the block, then apply it (docs/architecture.md, "Deferred copy-up").
  kBackground,
  // Held as in kBackground, but no copier threads: a copy-up runs when a read, trim, flush or
  // the bound on held bytes needs it done, so a seeded run replays the same store calls.
  kOnDemand,
  // Every copy-up before its write returns.
  kOff,
};

struct VolumeOptions {
  CopyUpMode copy_up = CopyUpMode::kBackground;
  int copier_threads = 2;  // per open volume, started with its first deferred copy-up
  // A clone's first write into a block its parent holds copies nothing: the entry becomes
  // partial (docs/format.md). Off: the whole block is copied, as for a snapshot's.
  bool partial_blocks = true;
  // The write lock's lease for read-write opens (OpenOptions may set another per open).
  int64_t lease_ms = 60'000;
  // Bytes of acknowledged writes held for deferred copy-ups by one volume, and by every volume
  // that shares `held_bytes` (null: one budget of 256 MiB for the whole process). A daemon
  // serves many volumes, and the NBD server's memory bound covers requests in flight, not these.
  uint64_t max_held_bytes_per_volume = 64ull << 20;
  std::shared_ptr<MemoryBudget> held_bytes;
  // Time for leases (null: the real clock); a simulated one in tests.
  std::shared_ptr<Clock> clock;
  // Cooperative opens (OpenOptions::handoff): how often a writer looks for a standby's
  // request to hand over, and how long a standby's write waits for the holder to do so.
  int64_t handoff_poll_ms = 10;
  int64_t handoff_wait_ms = 10'000;
};

// What a read-write open of a volume's head does about other opens of it (docs/operations.md,
// "Live migration").
enum class Handoff {
  // Busy when another owner holds the write lock; never gives it up while open. The CLI's
  // opens, and an exclusive open (Ganeti's VOL_OPEN_EXCLUSIVE).
  kNever,
  // Opens as a standby when another owner holds the write lock: reads are served (from the
  // volume as the holder last flushed it), and the first write, trim or zeroing asks the
  // holder to hand over, then goes on as the writer. A writer hands over when asked: it
  // holds new I/O, drains what is in flight, flushes, releases the lock, and never writes
  // again (its clients' VM has moved; a new open may ask for the volume back).
  kCooperative,
};

// What an open of a volume is doing now.
enum class VolumeRole {
  kReadOnly,    // a snapshot, or opened read-only
  kWriter,      // holds the write lock
  kStandby,     // cooperative, waiting: the first write asks the holder for the lock
  kHandedOver,  // cooperative, gave the lock to another open: refuses writes for good
};
const char* VolumeRoleName(VolumeRole role);

struct OpenOptions {
  bool read_only = false;  // snapshots are always read-only
  // Who holds the volume's write lock while it is open, e.g. "skerry-cli@host:pid".
  std::string owner;
  int64_t lease_ms = 0;  // 0: the catalog's VolumeOptions::lease_ms
  Handoff handoff = Handoff::kNever;
  // Told, in one line, of each handoff of a cooperative open (taken, handed over, refused):
  // for the daemon's log. May run on any thread; must not call into the volume.
  std::function<void(const std::string&)> on_handoff;
  // Returns true only with proof that lock owner `owner` is no longer running (a restarted
  // daemon's dead predecessor, by a lock on its state file): its lock is then broken at once
  // instead of waiting out its lease. Null: no owner is ever presumed gone.
  std::function<bool(const std::string& owner)> owner_is_gone;
};

class Volume {
 public:
  virtual ~Volume() = default;

  virtual const std::string& name() const = 0;  // "vol" or "vol@snap"
  // The volume's id, 32 hex digits as in VolumeInfo (a snapshot's is its volume's): unlike
  // the name it never changes, and it tells apart volumes of one name in different stores.
  virtual std::string volume_id() const = 0;
  virtual uint64_t size() const = 0;
  virtual uint32_t block_size() const = 0;
  virtual bool read_only() const = 0;
  virtual VolumeRole role() const { return read_only() ? VolumeRole::kReadOnly : VolumeRole::kWriter; }

  // I/O at any byte offset and length. REQUIRES: offset + length <= size(); the NBD
  // layer and CLI check ranges before calling (InvalidArgument here otherwise). Faster,
  // non-blocking variants for servers are not part of this interface (a volume may offer
  // them through src/util/volume_fast_paths.h).
  virtual Status Read(uint64_t offset, std::span<char> out) = 0;
  // With `fua`, the data is durable when Write returns.
  virtual Status Write(uint64_t offset, std::span<const char> data, bool fua = false) = 0;
  // Discards the range: whole blocks become holes; partial blocks are zeroed.
  virtual Status Trim(uint64_t offset, uint64_t length) = 0;
  // Zeroes the range. Without `may_trim` (NBD_CMD_FLAG_NO_HOLE), blocks stay
  // allocated and are written as zeros.
  virtual Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua = false) = 0;
  // Every write completed before Flush was called is durable when it returns,
  // including its map updates.
  virtual Status Flush() = 0;
  // Allocation of [offset, offset+length), in order, covering the whole range.
  virtual Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) = 0;

  // Management on an open volume (the daemon holds volumes open; the CLI asks it).
  // Snapshot is point-in-time: callers drain in-flight I/O first.
  virtual Status CreateSnapshot(const std::string& snap) = 0;
  virtual Status Resize(uint64_t new_size, bool allow_shrink) = 0;

  // Flushes and releases the write lock. Called by the destructor if not called.
  virtual Status Close() = 0;
};

class Catalog {
 public:
  virtual ~Catalog() = default;

  // The catalog of volumes kept in `store`; volumes it opens behave as `options` say.
  static Result<std::unique_ptr<Catalog>> Open(std::shared_ptr<ObjectStore> store,
                                               const VolumeOptions& options = {});

  virtual ObjectStore& store() = 0;

  virtual Status Create(const std::string& name, uint64_t size,
                        uint32_t block_size = kDefaultBlockSize) = 0;
  virtual Result<std::vector<VolumeInfo>> List(bool with_usage = false) = 0;
  // `spec` is "volume" or "volume@snap".
  virtual Result<VolumeInfo> Info(const std::string& spec, bool with_usage = false) = 0;
  virtual Status Remove(const std::string& name) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Resize(const std::string& name, uint64_t new_size, bool allow_shrink) = 0;

  // Snapshots of volume `name` (Volume::CreateSnapshot is the same operation on an open
  // volume). Rollback makes the volume's content the snapshot's again.
  virtual Status CreateSnapshot(const std::string& name, const std::string& snap) = 0;
  virtual Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& name) = 0;
  virtual Status RemoveSnapshot(const std::string& name, const std::string& snap) = 0;
  virtual Status Rollback(const std::string& name, const std::string& snap) = 0;
  // A thin clone of name@snap; `size` may grow it (never below the snapshot's size).
  virtual Status Clone(const std::string& name, const std::string& snap,
                       const std::string& new_name, std::optional<uint64_t> size = {}) = 0;

  // Who holds the write lock of `name` (NotFound when nobody does). A daemon's owner
  // string names its admin socket, so the CLI can ask it to act on a volume it has open.
  virtual Result<LockInfo> LockHolder(const std::string& name) = 0;
  // The write lock of `name` and any standby's request that its holder hand over.
  virtual Result<VolumeLockState> LockState(const std::string& name) = 0;
  // Breaks the write lock of `name` if `owner` holds it (lease lapsed or not), with `fence`
  // first making sure that owner can write no more where the store can (ObjectStore::BreakLock):
  // an operator's decision about a holder that is gone. Without `fence` only for a holder known
  // dead (a daemon's dead predecessor). Busy when another owner holds it; NotFound when nobody does.
  virtual Status BreakLock(const std::string& name, const std::string& owner, bool fence) = 0;

  // Opens "volume" (read-write unless options say otherwise) or "volume@snap" (read-only).
  virtual Result<std::unique_ptr<Volume>> Open(const std::string& spec,
                                               const OpenOptions& options = {}) = 0;
};

// Validation helpers shared by the CLI, the daemon and the catalog.
Status ValidateVolumeName(std::string_view name);
Status ValidateBlockSize(uint64_t block_size);
Status ValidateVolumeSize(uint64_t size);
// "background", "on-demand" or "off" (VolumeOptions::copy_up, as skerryd's config and the CLI
// name it); InvalidArgument otherwise.
Result<CopyUpMode> ParseCopyUpMode(std::string_view text);
// Splits "vol@snap"; snap is empty when there is no '@'.
Status SplitSpec(std::string_view spec, std::string* volume, std::string* snap);

}  // namespace skerry
