// FdCache: a bounded LRU of open object files keyed by object name, so that a Read or
// Write of the dir store does not open() the file each time.
//
// Lookups return a shared reference to the open file: evicting or invalidating an entry
// only drops the cache's reference, and the descriptor closes when the last in-flight
// user is done with it. Whoever replaces or removes the file behind a name (rename,
// unlink) must call Invalidate(name) afterwards. A lookup that opened the old file
// before such an invalidation returns it to its caller (that I/O raced with the
// replacement, so either order is correct) but does not cache it.
//
// Only this process's changes are seen: a file another process replaces stays cached
// here until invalidated (DirStore clears the cache when it takes a lock; see there).
//
// Thread-safety: all methods may be called concurrently (one internal mutex, never held
// across open()).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "skerry/status.h"
#include "store/dir/file_ops.h"

namespace skerry::dirstore {

class FdCache {
 public:
  // One open object file.
  class File {
   public:
    explicit File(UniqueFd fd) : fd_(std::move(fd)) {}
    int fd() const { return fd_.get(); }

   private:
    UniqueFd fd_;
  };
  using FileRef = std::shared_ptr<const File>;
  // Opens the file for a name on a miss (NotFound etc. are passed to the caller).
  using Opener = std::function<Result<UniqueFd>()>;

  // REQUIRES: capacity >= 1.
  explicit FdCache(size_t capacity);

  // The cached file for `name`, or the one `open` returns (cached unless invalidated
  // meanwhile). When `open` fails with EMFILE, half the cache is closed and it is
  // tried once more.
  Result<FileRef> Get(const std::string& name, const Opener& open);
  // The cached file, or null; never opens.
  FileRef Peek(const std::string& name);
  void Invalidate(const std::string& name);
  void Clear();

  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  using Entry = std::pair<std::string, FileRef>;
  // Invalidation generations are kept per stripe of names, not per name, so that
  // they take bounded memory; a collision only costs a missed caching.
  static constexpr size_t kStripes = 64;
  static size_t StripeOf(const std::string& name) { return std::hash<std::string>{}(name) % kStripes; }
  void DropOldestHalf();

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first; GUARDED_BY(mu_)
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;  // GUARDED_BY(mu_)
  std::array<uint64_t, kStripes> generation_{};  // bumped by Invalidate; GUARDED_BY(mu_)
};

}  // namespace skerry::dirstore
