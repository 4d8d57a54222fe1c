// ParallelSync: fdatasync/fsync of many files at once, so the file system can make
// them durable together (one journal commit and one cache flush for many files instead
// of one each: ext4 and xfs both batch concurrent syncs). DirStore::Sync uses it.
//
// The syncs are issued through io_uring (IORING_OP_FSYNC, IORING_FSYNC_DATASYNC for
// data syncs; the kernel runs them on its io-wq workers) with up to `parallelism` in
// flight; where io_uring is unavailable (old kernel, seccomp, io_uring_disabled) over
// up to `parallelism` threads started for the call. With `parallelism` 1, or at most two
// targets (measured faster so), it is one sync after the other on the caller's thread.
//
// `open(i)` may run on several threads at once. Targets are opened lazily, just before their sync is issued, so at most
// `parallelism` descriptors are open at a time however many files are synced.
//
// Thread-safety: a ParallelSync may be used from any number of threads at once (every
// call has its own ring or threads).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "skerry/status.h"
#include "store/dir/file_ops.h"

namespace skerry::dirstore {

// One file to sync, as an opener returns it.
struct SyncTarget {
  int fd = -1;                  // -1: nothing to sync (the file does not exist)
  bool datasync = true;         // fdatasync; false: fsync (directories)
  UniqueFd owned;               // the descriptor, when the opener opened one
  std::shared_ptr<const void> keep;  // or what keeps a borrowed descriptor open
  std::string what;             // error context, e.g. the path
};

class ParallelSync {
 public:
  enum class Engine { kUring, kThreads };

  // REQUIRES: parallelism >= 1.
  ParallelSync(unsigned parallelism, Engine engine);

  // Syncs targets 0..count-1, `open(i)` giving each. Returns OK when every sync
  // succeeded; else stops issuing new ones, waits for those in flight, and returns the
  // error of the lowest-numbered target that failed (an opener's error counts as one).
  Status Run(size_t count, const std::function<Result<SyncTarget>(size_t)>& open);

  // How the last Run with more than one target did it; for tests and benchmarks.
  Engine engine_used() const { return engine_used_.load(); }

 private:
  Status RunSerial(size_t count, const std::function<Result<SyncTarget>(size_t)>& open);
  Status RunThreads(size_t count, const std::function<Result<SyncTarget>(size_t)>& open);
  // False, having done nothing, when no ring can be set up (then threads do it).
  bool RunUring(size_t count, const std::function<Result<SyncTarget>(size_t)>& open, Status* result);

  const unsigned parallelism_;
  const Engine engine_;
  std::atomic<bool> uring_works_{true};  // cleared when setting up a ring failed once
  std::atomic<Engine> engine_used_;
};

}  // namespace skerry::dirstore
