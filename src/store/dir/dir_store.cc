#include "store/dir/dir_store.h"

#include <map>
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>

namespace skerry {

using dirstore::DirLayout;
using dirstore::FdCache;

namespace {

// The NFS client renames a file that is removed while open to ".nfsXXXX"; such names
// are left out of List and so cannot be object names here.
constexpr std::string_view kNfsSillyPrefix = ".nfs";
// The write piece on ext4 (DirStoreOptions::write_piece): 64 KiB pieces keep most of what
// smaller ones gain for later 4 KiB rewrites of the block (store_io_bench rewrite), and
// leave page-cache writes of 1 MiB and their fdatasync as fast as whole writes; smaller
// pieces cost more syscalls per MiB (docs/stores.md, "Small writes into blocks filled by
// big writes", has the figures).
constexpr size_t kExt4WritePiece = 64 * 1024;

Status CheckName(const std::string& name) {
  if (!IsValidObjectName(name)) return Status::InvalidArgument("invalid object name '" + name + "'");
  if (name.starts_with(kNfsSillyPrefix)) {
    return Status::InvalidArgument("object name '" + name + "': names starting with '.nfs' are " +
                                   "reserved by NFS in dir stores");
  }
  return Status::OK();
}

// File offsets are signed 64-bit.
Status CheckRange(uint64_t offset, uint64_t length) {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (length > kMax || offset > kMax - length) {
    return Status::InvalidArgument("range " + std::to_string(offset) + "+" + std::to_string(length) +
                                   " is past the largest file offset");
  }
  return Status::OK();
}

// Never all of RLIMIT_NOFILE: the process needs descriptors for sockets and the rest.
size_t FdCacheCapacity(size_t wanted) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    wanted = std::min<size_t>(wanted, std::max<size_t>(16, rl.rlim_cur / 2));
  }
  return std::max<size_t>(wanted, 1);
}

std::string NewTempPrefix() {
  std::random_device rd;
  uint64_t r = (static_cast<uint64_t>(rd()) << 32) | rd();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d-%016" PRIx64, static_cast<int>(getpid()), r);
  return buf;
}

// Removes temporaries a crashed process left behind.
void RemoveStaleTemps(const std::string& tmp_dir, std::chrono::seconds max_age) {
  DIR* d = opendir(tmp_dir.c_str());
  if (d == nullptr) return;
  const time_t cutoff = time(nullptr) - static_cast<time_t>(max_age.count());
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        st.st_mtime < cutoff) {
      unlinkat(dirfd(d), e->d_name, 0);
    }
  }
  closedir(d);
}

}  // namespace

// ---- opening ----

Result<std::shared_ptr<DirStore>> DirStore::Open(const std::string& root, DirStoreOptions options) {
  if (root.empty()) return Status::InvalidArgument("dir store needs a directory path");
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(root, ec);
  if (ec) return Status::FromErrno(ec.value(), "resolve " + root);
  SKERRY_ASSIGN_OR_RETURN(DirLayout layout, DirLayout::Prepare(abs.lexically_normal().string()));
  SKERRY_ASSIGN_OR_RETURN(auto locks, dirstore::ShardLocks::Open(layout.cas_lock_file(), DirLayout::kShards));
  RemoveStaleTemps(layout.tmp_dir(), options.stale_temp_age);

  StoreCapabilities caps;
  caps.server_side_copy = true;  // reflink or copy_file_range: never through this process
  caps.cheap_copy = dirstore::ReflinkWorks(layout.tmp_dir());
  caps.native_async = false;     // inline pread/pwrite; see the header
  caps.persistent = true;
  caps.durable_writes = false;   // page cache until Sync
  caps.pipe_reads = true;        // ReadToPipe: splice from the page cache
  if (!options.write_piece) {
    SKERRY_ASSIGN_OR_RETURN(UniqueFd dir, dirstore::OpenFile(layout.tmp_dir(), O_RDONLY | O_DIRECTORY));
    options.write_piece = dirstore::IsExt4(dir.get()) ? kExt4WritePiece : 0;
  }
  return std::shared_ptr<DirStore>(new DirStore(std::move(layout), std::move(locks), caps, options));
}

DirStore::DirStore(DirLayout layout, std::unique_ptr<dirstore::ShardLocks> locks,
                   StoreCapabilities caps, const DirStoreOptions& options)
    : layout_(std::move(layout)),
      shard_locks_(std::move(locks)),
      caps_(caps),
      write_piece_(options.write_piece.value_or(0)),
      fds_(FdCacheCapacity(options.max_open_files)),
      temp_prefix_(NewTempPrefix()),
      syncer_(options.sync_parallelism, options.sync_with_io_uring ? dirstore::ParallelSync::Engine::kUring
                                                                 : dirstore::ParallelSync::Engine::kThreads) {}

// ---- data path: the Do* helpers do the work, the overrides complete inline ----

void DirStore::Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) {
  Status st = DoRead(name, offset, out);
  if (st.ok()) {
    done(out.size());
  } else {
    done(std::move(st));
  }
}

void DirStore::Write(const std::string& name, uint64_t offset, std::span<const char> data,
                     bool fresh, Done done) {
  done(DoWrite(name, offset, data, fresh));
}

void DirStore::Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) {
  done(DoZero(name, offset, length));
}

void DirStore::Copy(const std::string& src, const std::string& dst, Done done) {
  done(DoCopy(src, dst));
}

void DirStore::Sync(std::vector<std::string> names, Done done) { done(DoSync(names)); }

Status DirStore::DoRead(const std::string& name, uint64_t offset, std::span<char> out) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, out.size()));
  SKERRY_ASSIGN_OR_RETURN(FdCache::FileRef file, OpenExisting(name));
  // The name, not the path, as error context: no string is built per request.
  SKERRY_ASSIGN_OR_RETURN(size_t n, dirstore::ReadAt(file->fd(), offset, out, name));
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), '\0');  // past the end
  return Status::OK();
}

Status DirStore::ReadToPipe(const std::string& name, uint64_t offset, uint64_t length, int pipe_fd) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  SKERRY_ASSIGN_OR_RETURN(FdCache::FileRef file, OpenExisting(name));
  return dirstore::SpliceToPipe(file->fd(), offset, length, pipe_fd, name);
}

Status DirStore::DoWrite(const std::string& name, uint64_t offset, std::span<const char> data,
                         bool fresh) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, data.size()));
  SKERRY_ASSIGN_OR_RETURN(FdCache::FileRef file, OpenOrCreate(name));
  if (fresh && ftruncate(file->fd(), 0) != 0) {
    return Status::FromErrno(errno, "truncate " + layout_.ObjectPath(name));
  }
  // A fresh write makes the object anew for the layers above, which name it in persisted
  // metadata after Sync. Its entry may be a leftover that an earlier process made and never
  // made durable (it crashed before its Sync): this process did not make it, but its
  // directory still needs the fsync that Sync gives entries this process made.
  if (fresh) NoteUnsyncedEntry(name);
  if (data.empty()) return Status::OK();
  return dirstore::WriteAt(file->fd(), offset, data, name, write_piece_);
}

Status DirStore::DoZero(const std::string& name, uint64_t offset, uint64_t length) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  SKERRY_ASSIGN_OR_RETURN(FdCache::FileRef file, OpenExisting(name));
  return dirstore::ZeroRange(file->fd(), offset, length, name);
}

Status DirStore::DoCopy(const std::string& src, const std::string& dst) {
  SKERRY_RETURN_IF_ERROR(CheckName(src));
  SKERRY_RETURN_IF_ERROR(CheckName(dst));
  SKERRY_ASSIGN_OR_RETURN(FdCache::FileRef from, OpenExisting(src));
  if (src == dst) return Status::OK();
  const std::string dst_path = layout_.ObjectPath(dst);
  SKERRY_ASSIGN_OR_RETURN(uint64_t size, dirstore::FileSize(from->fd(), layout_.ObjectPath(src)));
  SKERRY_ASSIGN_OR_RETURN(Temp temp, NewTemp());
  Status st = dirstore::CopyData(from->fd(), temp.fd.get(), size, caps_.cheap_copy,
                                 layout_.ObjectPath(src) + " to " + temp.path)
                  .status();
  // Not synced here: like a Write, a Copy is durable only after Sync(dst), which
  // fdatasyncs the renamed file and fsyncs its directory (the layers above never name
  // dst in persisted metadata before that). The rename only keeps readers from ever
  // seeing a half-made copy.
  if (st.ok()) fds_.Invalidate(dst);  // close ours first: on NFS an open target is silly-renamed
  if (st.ok() && rename(temp.path.c_str(), dst_path.c_str()) != 0) {
    st = Status::FromErrno(errno, "rename " + temp.path + " to " + dst_path);
  }
  if (!st.ok()) {
    unlink(temp.path.c_str());
    return st;
  }
  fds_.Invalidate(dst);
  NoteUnsyncedEntry(dst);
  return Status::OK();
}

Status DirStore::DoSync(const std::vector<std::string>& names) {
  for (const std::string& name : names) SKERRY_RETURN_IF_ERROR(CheckName(name));
  // Shard directories owed an fsync for entries this process made (claimed now, so an
  // entry a Copy or create makes again meanwhile stays owed to a later Sync).
  std::vector<const std::string*> claimed;
  std::set<uint32_t> dirty_shards;
  for (const std::string& name : names) {
    if (ClaimEntry(name)) {
      claimed.push_back(&name);
      dirty_shards.insert(DirLayout::ShardOf(name));
    }
  }
  const std::vector<uint32_t> shards(dirty_shards.begin(), dirty_shards.end());
  // Every file and every directory at once: nothing is promised before Sync returns,
  // so which of them becomes durable first does not matter.
  Status st = syncer_.Run(names.size() + shards.size(), [&](size_t i) -> Result<dirstore::SyncTarget> {
    dirstore::SyncTarget t;
    if (i >= names.size()) {
      t.what = layout_.ShardDir(shards[i - names.size()]);
      t.datasync = false;
      SKERRY_ASSIGN_OR_RETURN(t.owned, dirstore::OpenFile(t.what, O_RDONLY | O_DIRECTORY));
      t.fd = t.owned.get();
      return t;
    }
    const std::string& name = names[i];
    t.what = layout_.ObjectPath(name);
    if (FdCache::FileRef cached = fds_.Peek(name)) {
      t.fd = cached->fd();
      t.keep = std::move(cached);
      return t;
    }
    auto f = dirstore::OpenFile(t.what, O_RDONLY);
    if (f.status().IsNotFound()) return t;  // deleted (durably) or never written: nothing to do
    SKERRY_RETURN_IF_ERROR(f.status());
    t.owned = std::move(f).value();
    t.fd = t.owned.get();
    return t;
  });
  for (const std::string* name : claimed) ReleaseEntry(*name, st.ok());
  return st;
}

Result<FdCache::FileRef> DirStore::OpenExisting(const std::string& name) {
  return fds_.Get(name, [&]() { return dirstore::OpenFile(layout_.ObjectPath(name), O_RDWR); });
}

Result<FdCache::FileRef> DirStore::OpenOrCreate(const std::string& name) {
  return fds_.Get(name, [&]() -> Result<UniqueFd> {
    const std::string path = layout_.ObjectPath(name);
    auto fd = dirstore::OpenFile(path, O_RDWR);
    if (!fd.status().IsNotFound()) return fd;
    // O_EXCL only to learn whether this call made the entry (which Sync must then
    // make durable); exclusivity itself is not relied on, so NFS semantics do not matter.
    fd = dirstore::OpenFile(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd.ok()) {
      NoteUnsyncedEntry(name);
      return fd;
    }
    if (fd.status().IsAlreadyExists()) return dirstore::OpenFile(path, O_RDWR);
    return fd;
  });
}

void DirStore::NoteUnsyncedEntry(const std::string& name) {
  std::lock_guard<std::mutex> lock(unsynced_mu_);
  unsynced_entries_.insert(name);
}

bool DirStore::TakeUnsyncedEntry(const std::string& name) {
  std::lock_guard<std::mutex> lock(unsynced_mu_);
  return unsynced_entries_.erase(name) > 0;
}

bool DirStore::ClaimEntry(const std::string& name) {
  std::lock_guard<std::mutex> lock(unsynced_mu_);
  auto syncing = syncing_entries_.find(name);
  if (unsynced_entries_.erase(name) == 0 && syncing == syncing_entries_.end()) return false;
  if (syncing == syncing_entries_.end()) syncing = syncing_entries_.emplace(name, 0).first;
  syncing->second++;
  return true;
}

void DirStore::ReleaseEntry(const std::string& name, bool synced) {
  std::lock_guard<std::mutex> lock(unsynced_mu_);
  auto syncing = syncing_entries_.find(name);
  if (syncing != syncing_entries_.end() && --syncing->second == 0) syncing_entries_.erase(syncing);
  if (!synced) unsynced_entries_.insert(name);
}

// ---- temporaries ----

Result<DirStore::Temp> DirStore::NewTemp() {
  Temp temp;
  temp.path = layout_.tmp_dir() + "/" + temp_prefix_ + "-" + std::to_string(temp_counter_++);
  SKERRY_ASSIGN_OR_RETURN(temp.fd, dirstore::OpenFile(temp.path, O_RDWR | O_CREAT | O_EXCL, 0644));
  return temp;
}

Result<DirStore::Temp> DirStore::WriteTemp(std::string_view data) {
  SKERRY_ASSIGN_OR_RETURN(Temp temp, NewTemp());
  Status st = dirstore::WriteAt(temp.fd.get(), 0, data, temp.path);
  if (st.ok() && fdatasync(temp.fd.get()) != 0) st = Status::FromErrno(errno, "fdatasync " + temp.path);
  if (!st.ok()) {
    unlink(temp.path.c_str());
    return st;
  }
  return temp;
}

// ---- control path ----

Result<std::string> DirStore::Get(const std::string& name) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  // A fresh open, not the fd cache: another process may have renamed a new file into
  // place, and on NFS an open revalidates the client's cache (close-to-open).
  const std::string path = layout_.ObjectPath(name);
  SKERRY_ASSIGN_OR_RETURN(UniqueFd fd, dirstore::OpenFile(path, O_RDONLY));
  return dirstore::ReadWhole(fd.get(), path);
}

Status DirStore::ReplaceLocked(const std::string& name, std::string_view data) {
  const std::string path = layout_.ObjectPath(name);
  SKERRY_ASSIGN_OR_RETURN(Temp temp, WriteTemp(data));
  fds_.Invalidate(name);  // close ours first: on NFS an open target is silly-renamed
  if (rename(temp.path.c_str(), path.c_str()) != 0) {
    Status st = Status::FromErrno(errno, "rename " + temp.path + " to " + path);
    unlink(temp.path.c_str());
    return st;
  }
  fds_.Invalidate(name);
  return dirstore::SyncDir(layout_.ShardDir(DirLayout::ShardOf(name)));
}

Status DirStore::Put(const std::string& name, std::string_view data) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_ASSIGN_OR_RETURN(auto guard, shard_locks_->Lock(DirLayout::ShardOf(name)));
  return ReplaceLocked(name, data);
}

Status DirStore::Create(const std::string& name, std::string_view data) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  const std::string path = layout_.ObjectPath(name);
  SKERRY_ASSIGN_OR_RETURN(Temp temp, WriteTemp(data));
  // link() fails with EEXIST when the name is taken, atomically on NFS too (unlike
  // O_EXCL on old NFS). A lost reply to a retried LINK can report an error although
  // the link was made, so on error the temporary's link count has the last word.
  Status st;
  if (link(temp.path.c_str(), path.c_str()) != 0) {
    int err = errno;
    struct stat s;
    if (!(fstat(temp.fd.get(), &s) == 0 && s.st_nlink == 2)) {
      st = err == EEXIST ? Status::AlreadyExists("object '" + name + "'")
                         : Status::FromErrno(err, "link " + temp.path + " to " + path);
    }
  }
  unlink(temp.path.c_str());
  SKERRY_RETURN_IF_ERROR(st);
  fds_.Invalidate(name);  // a file of this name deleted elsewhere may still be cached
  return dirstore::SyncDir(layout_.ShardDir(DirLayout::ShardOf(name)));
}

Status DirStore::CompareAndSwap(const std::string& name, std::string_view expected,
                                std::string_view desired) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_ASSIGN_OR_RETURN(auto guard, shard_locks_->Lock(DirLayout::ShardOf(name)));
  SKERRY_ASSIGN_OR_RETURN(std::string current, Get(name));
  if (current != expected) return Status::Conflict("object '" + name + "' changed");
  return ReplaceLocked(name, desired);
}

Status DirStore::Truncate(const std::string& name, uint64_t size) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckRange(0, size));
  SKERRY_ASSIGN_OR_RETURN(FdCache::FileRef file, OpenOrCreate(name));
  if (ftruncate(file->fd(), static_cast<off_t>(size)) != 0) {
    return Status::FromErrno(errno, "truncate " + layout_.ObjectPath(name));
  }
  return Status::OK();
}

Result<ObjectInfo> DirStore::Stat(const std::string& name) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  const std::string path = layout_.ObjectPath(name);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  return ObjectInfo{static_cast<uint64_t>(st.st_size)};
}

Status DirStore::Delete(const std::string& name) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  const uint32_t shard = DirLayout::ShardOf(name);
  SKERRY_ASSIGN_OR_RETURN(auto guard, shard_locks_->Lock(shard));
  Status st = UnlinkLocked(name);
  if (!st.ok() && !st.IsNotFound()) return st;
  // Also when it was not there: an earlier Delete may have unlinked it and then failed in
  // this fsync, and the caller, told NotFound now, takes the deletion for durable.
  SKERRY_RETURN_IF_ERROR(dirstore::SyncDir(layout_.ShardDir(shard)));
  return st;
}

Status DirStore::UnlinkLocked(const std::string& name) {
  const std::string path = layout_.ObjectPath(name);
  fds_.Invalidate(name);  // close ours first: on NFS an open file is silly-renamed
  if (unlink(path.c_str()) != 0) return Status::FromErrno(errno, "delete " + path);
  fds_.Invalidate(name);  // and drop any file a racing lookup opened meanwhile
  TakeUnsyncedEntry(name);  // the caller's directory fsync covers it
  return Status::OK();
}

Status DirStore::DeleteMany(const std::vector<std::string>& names) {
  // Shard by shard: unlink each, then one fsync of the shard's directory for all of them
  // (Delete pays that fsync per object, which made removing a large volume much slower,
  // above all on a busy disk: docs/stores.md).
  std::map<uint32_t, std::vector<const std::string*>> by_shard;
  for (const std::string& name : names) {
    SKERRY_RETURN_IF_ERROR(CheckName(name));
    by_shard[DirLayout::ShardOf(name)].push_back(&name);
  }
  for (const auto& [shard, shard_names] : by_shard) {
    SKERRY_ASSIGN_OR_RETURN(auto guard, shard_locks_->Lock(shard));
    for (const std::string* name : shard_names) {
      Status st = UnlinkLocked(*name);
      if (!st.ok() && !st.IsNotFound()) return st;
    }
    SKERRY_RETURN_IF_ERROR(dirstore::SyncDir(layout_.ShardDir(shard)));
  }
  return Status::OK();
}

Result<std::vector<std::string>> DirStore::List(std::string_view prefix) {
  std::vector<std::string> names;
  for (uint32_t shard = 0; shard < DirLayout::kShards; shard++) {
    const std::string dir = layout_.ShardDir(shard);
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return Status::FromErrno(errno, "list " + dir);
    for (;;) {
      errno = 0;  // readdir's end and its failure (EIO, ESTALE on NFS) are told apart by errno
      dirent* e = readdir(d);
      if (e == nullptr) break;
      std::string_view n = e->d_name;
      // Only object names: not ".", "..", NFS leftovers or files someone else put here.
      if (n.starts_with(prefix) && IsValidObjectName(n) && !n.starts_with(kNfsSillyPrefix)) {
        names.emplace_back(n);
      }
    }
    const int err = errno;
    closedir(d);
    // A partial listing would read as objects that are not there: sync would leave them
    // out, check would call them missing.
    if (err != 0) return Status::FromErrno(err, "list " + dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Status DirStore::Lock(const std::string& name, const std::string& owner, int64_t lease_ms) {
  Result<LockInfo> before = GetLock(name);
  SKERRY_RETURN_IF_ERROR(ObjectStore::Lock(name, owner, lease_ms));
  if (!(before.ok() && before->owner == owner)) fds_.Clear();
  return Status::OK();
}

}  // namespace skerry
