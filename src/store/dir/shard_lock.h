// ShardLocks: mutual exclusion per shard of object names between every thread, process
// and (over NFS) host using one dir store. Held around compare-and-swap, put and delete
// so that a compare-and-swap's read-compare-replace is atomic against all of them.
//
// Two layers, because fcntl locks of one open file description never conflict with
// each other: a std::mutex per shard orders this process's threads, then an OFD write
// lock (F_OFD_SETLKW) on byte SHARD of ROOT/locks/cas orders processes. The kernel
// drops OFD locks when the file is closed or the process dies, so a crash never
// leaves a shard locked. Over NFS the client forwards the byte-range lock to the
// server (NLM or NFSv4 LOCK); mounts with `nolock` or `local_lock=posix` make it
// local to one host, and the store then is only safe for one host.
//
// Thread-safety: Lock may be called concurrently; a Guard belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "skerry/status.h"
#include "store/dir/file_ops.h"

namespace skerry::dirstore {

class ShardLocks {
 public:
  // Releases the shard (file lock first, then the mutex) when destroyed.
  class Guard {
   public:
    Guard(Guard&& other) noexcept;
    Guard& operator=(Guard&&) = delete;
    ~Guard();

   private:
    friend class ShardLocks;
    Guard(ShardLocks* locks, uint32_t shard) : locks_(locks), shard_(shard) {}
    ShardLocks* locks_;
    uint32_t shard_;
  };

  // `path` is the lock file (created by DirLayout); `shards` the number of shards.
  static Result<std::unique_ptr<ShardLocks>> Open(const std::string& path, uint32_t shards);

  // Blocks until this thread holds `shard` against every other user of the store.
  Result<Guard> Lock(uint32_t shard);

 private:
  ShardLocks(std::string path, UniqueFd fd, uint32_t shards);
  void Unlock(uint32_t shard);

  const std::string path_;
  const UniqueFd fd_;
  std::vector<std::mutex> mutexes_;  // one per shard
};

}  // namespace skerry::dirstore
