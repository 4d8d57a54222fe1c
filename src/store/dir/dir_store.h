// DirStore: the "dir:PATH" store, each object a file under PATH, on a local file
// system or on NFS shared by many hosts.
//
// Layout and format are described in dir_layout.h and docs/stores.md. In short:
// objects live in PATH/objects/XX/NAME; whole-object updates (Put, Create,
// CompareAndSwap) write a temporary in PATH/tmp, fsync it and rename (Put, CAS) or
// link (Create) it into place, then fsync the shard directory; CompareAndSwap, Put and
// Delete hold a per-shard lock (ShardLocks) that also excludes other processes and hosts.
//
// The data path (Read, Write, Zero, Copy, Sync) runs inline on the caller's thread with
// positioned page-cache I/O (pread/pwrite) and calls `done` before returning: measured
// faster here than io_uring for cache-hot 4 KiB I/O (docs/stores.md). It therefore
// blocks the caller for the time of the I/O, and capabilities().native_async is false;
// callers wanting concurrency issue from several threads. Open files are kept in a
// bounded LRU (FdCache) so a request does not open() its file.
//
// Copy never moves data through user space: a reflink where the file system has them
// (capabilities().cheap_copy, probed at open), else copy_file_range of the data ranges
// only, so holes stay holes. The copy is made in a temporary and renamed over the
// destination, so no reader ever sees a half-made copy; like a Write it is durable
// only after Sync(dst), which fdatasyncs the file and fsyncs its directory.
//
// Sync also completes before it returns, but issues the fdatasyncs of many objects (and
// the fsyncs of their directories) all at once, through io_uring, so that the file
// system commits them together instead of one journal commit and device flush per file
// (ParallelSync; DirStoreOptions::sync_parallelism).
//
// Objects replaced by another process are not seen through this process's cached open
// files. The layers above make one process the writer of a volume with a lease lock;
// taking a lock this store did not hold therefore drops the fd cache, so data written
// elsewhere under that lock is read through fresh opens (on NFS, close-to-open
// consistency then revalidates the client's cache).
//
// Thread-safety: every method may be called from any thread concurrently; several
// DirStores (in one or many processes or hosts) may share one PATH.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "skerry/object_store.h"
#include "store/dir/dir_layout.h"
#include "store/dir/fd_cache.h"
#include "store/dir/parallel_sync.h"
#include "store/dir/shard_lock.h"

namespace skerry {

struct DirStoreOptions {
  // Bound of the open-file cache; lowered to half of RLIMIT_NOFILE if that is smaller.
  size_t max_open_files = 1024;
  // Temporaries older than this are left over from a crash and removed at open. Long
  // enough that no live writer on another host is still filling one.
  std::chrono::seconds stale_temp_age = std::chrono::hours(1);
  // Sync keeps up to this many fdatasync/fsync calls in flight, so the file system can
  // make many files durable in one journal commit; 1 syncs one file after the other.
  unsigned sync_parallelism = 64;
  // Issue them through io_uring; false (or io_uring unavailable): over threads.
  bool sync_with_io_uring = true;
  // Data writes go to the file in pwrite calls of at most this many bytes (aligned to
  // it), 0 = whole. Why: since Linux 6.16 ext4 caches a file in folios as large as the
  // write that filled them, and every later small write into such a folio walks all of
  // its buffer heads. A block filled by 1 MiB guest writes then takes 4 KiB rewrites
  // several times slower than one filled in 64 KiB pieces (docs/stores.md, "Small writes
  // into blocks filled by big writes"); sequential writes pay a few more syscalls.
  // Applied only on ext4 (nullopt, the default: 64 KiB on ext4, whole elsewhere).
  std::optional<size_t> write_piece;
};

class DirStore final : public ObjectStore {
 public:
  // Opens (creating if missing or empty) the store at `root`; relative paths are taken
  // from the current directory. InvalidArgument for a non-empty directory that is not
  // a skerry store.
  static Result<std::shared_ptr<DirStore>> Open(const std::string& root, DirStoreOptions options = {});

  StoreCapabilities capabilities() const override { return caps_; }
  std::string uri() const override { return "dir:" + layout_.root(); }

  void Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) override;
  Status ReadToPipe(const std::string& name, uint64_t offset, uint64_t length, int pipe_fd) override;
  void Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh,
             Done done) override;
  void Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) override;
  void Copy(const std::string& src, const std::string& dst, Done done) override;
  void Sync(std::vector<std::string> names, Done done) override;

  Result<std::string> Get(const std::string& name) override;
  Status Put(const std::string& name, std::string_view data) override;
  Status Create(const std::string& name, std::string_view data) override;
  Status CompareAndSwap(const std::string& name, std::string_view expected,
                        std::string_view desired) override;
  Status Truncate(const std::string& name, uint64_t size) override;
  Result<ObjectInfo> Stat(const std::string& name) override;
  Status Delete(const std::string& name) override;
  Status DeleteMany(const std::vector<std::string>& names) override;
  Result<std::vector<std::string>> List(std::string_view prefix) override;

  // The default lease lock, plus: taking a lock not held before drops the fd cache.
  Status Lock(const std::string& name, const std::string& owner, int64_t lease_ms) override;

  // For tests and diagnostics.
  const dirstore::DirLayout& layout() const { return layout_; }
  size_t cached_files() const { return fds_.size(); }
  size_t write_piece() const { return write_piece_; }
  dirstore::ParallelSync::Engine sync_engine_used() const { return syncer_.engine_used(); }
  // Entries made by the data path whose directory has not been fsynced since.
  size_t unsynced_entries() const {
    std::lock_guard<std::mutex> lock(unsynced_mu_);
    return unsynced_entries_.size();
  }

 private:
  // A temporary file being filled before it is renamed or linked into objects/.
  struct Temp {
    std::string path;
    UniqueFd fd;
  };

  DirStore(dirstore::DirLayout layout, std::unique_ptr<dirstore::ShardLocks> locks,
           StoreCapabilities caps, const DirStoreOptions& options);

  Status DoRead(const std::string& name, uint64_t offset, std::span<char> out);
  Status DoWrite(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh);
  Status DoZero(const std::string& name, uint64_t offset, uint64_t length);
  Status DoCopy(const std::string& src, const std::string& dst);
  Status DoSync(const std::vector<std::string>& names);

  // The cached open file of an existing object (NotFound if there is none).
  Result<dirstore::FdCache::FileRef> OpenExisting(const std::string& name);
  // The cached open file, creating an empty object if absent.
  Result<dirstore::FdCache::FileRef> OpenOrCreate(const std::string& name);

  Result<Temp> NewTemp();
  // A durable temporary holding `data`.
  Result<Temp> WriteTemp(std::string_view data);
  // Put without the shard lock. REQUIRES: the shard of `name` is locked.
  Status ReplaceLocked(const std::string& name, std::string_view data);

  // Directory entries created or renamed by the data path reach stable storage only
  // when their shard directory is fsynced; Sync does that for the names recorded here.
  void NoteUnsyncedEntry(const std::string& name);
  bool TakeUnsyncedEntry(const std::string& name);
  // Unlinks an object's file (NotFound when absent), holding its shard's lock; the caller
  // fsyncs the shard's directory.
  Status UnlinkLocked(const std::string& name);
  // For Sync: whether the shard directory of `name` needs an fsync, because its entry
  // is unsynced or another Sync of it is still under way (so this one must not return
  // before the entry is durable either). A claim is ended by ReleaseEntry, which marks
  // the entry unsynced again when the Sync failed.
  bool ClaimEntry(const std::string& name);
  void ReleaseEntry(const std::string& name, bool synced);

  const dirstore::DirLayout layout_;
  const std::unique_ptr<dirstore::ShardLocks> shard_locks_;
  const StoreCapabilities caps_;
  const size_t write_piece_;  // DirStoreOptions::write_piece as resolved at open
  dirstore::FdCache fds_;
  const std::string temp_prefix_;  // unique per store instance: pid and random bits
  std::atomic<uint64_t> temp_counter_{0};
  dirstore::ParallelSync syncer_;
  mutable std::mutex unsynced_mu_;
  std::set<std::string> unsynced_entries_;  // GUARDED_BY(unsynced_mu_)
  std::map<std::string, int> syncing_entries_;  // claims per name; GUARDED_BY(unsynced_mu_)
};

}  // namespace skerry
