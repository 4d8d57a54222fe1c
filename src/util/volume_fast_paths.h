// VolumeFastPaths: what a volume can do faster than through skerry::Volume's blocking calls,
// for a server that asks once per export which of them it has (as nbdkit asks a plugin's
// can_* once per connection) instead of on every request.
//
//   - ReadAsync: a read that does not block the caller while the store works, where the
//     store is natively asynchronous (async_reads);
//   - ReadToPipe: a zero-copy read into a pipe, for a server that splices it into a socket
//     (pipe_reads);
//   - TryWriteAsync: a write that does not block, where the volume can take it so
//     (async_writes).
//
// Not part of the public API (include/skerry/volume.h): the volume layer implements it and
// the NBD server uses it, and util is the one layer both may see. A volume without fast
// paths simply does not implement it (FastPathsOf returns null).
//
// Thread-safety: as the volume's I/O methods.
#pragma once

#include <cstdint>
#include <span>

#include "skerry/done.h"
#include "skerry/status.h"
#include "skerry/volume.h"

namespace skerry {

class VolumeFastPaths {
 public:
  struct Caps {
    bool async_reads = false;
    bool pipe_reads = false;
    bool async_writes = false;
  };

  virtual ~VolumeFastPaths() = default;

  // Which of the calls below do more than their blocking counterparts. Fixed for as long as
  // the volume is open.
  virtual Caps fast_paths() const = 0;

  // `done` runs exactly once, inline or on a store thread, and `out` must stay valid until
  // then; `done` must not block on this volume's store. Without async_reads: Read, inline.
  virtual void ReadAsync(uint64_t offset, std::span<char> out, Done done) = 0;
  // Puts the range into the pipe `pipe_fd` (holes as zeros) without copying it through this
  // process. Busy when the pipe fills up (it counts page pieces, not bytes: see
  // ObjectStore::ReadToPipe). After an error part of the bytes may be in the pipe. Without
  // pipe_reads: NotSupported.
  virtual Status ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) = 0;
  // Returns false, having done nothing, when the write must take the blocking path (Write)
  // instead; errors too are left to Write to report. Otherwise `done` runs exactly once,
  // inline or on a store thread, must not block on this volume's store, and `data` must stay
  // valid until then. Like Write without FUA: durable after a Flush.
  virtual bool TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) = 0;
};

// The fast paths of `v`, null when it has none.
inline VolumeFastPaths* FastPathsOf(Volume& v) { return dynamic_cast<VolumeFastPaths*>(&v); }

}  // namespace skerry
