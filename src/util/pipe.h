// Pipes as the middle of a zero-copy read: file pages are spliced into a pipe (the
// kernel takes references, copies nothing), then spliced from the pipe into a socket.
// Used by the directory store (file -> pipe) and the NBD server (pipe -> socket).
#pragma once

#include <cstddef>
#include <cstdint>

#include "skerry/status.h"

namespace skerry {

// A pipe owned by one thread, sized for a whole reply (up to kPipeWantedCapacity).
// The pipe is empty between uses; a user that stops half-way calls Reset. Fill it with
// SPLICE_F_NONBLOCK (nobody drains it while it is being filled).
class ThreadPipe {
 public:
  // What a pipe is asked to hold: one 1 MiB read, the kernel's default limit for
  // unprivileged processes (/proc/sys/fs/pipe-max-size).
  static constexpr size_t kPipeWantedCapacity = 1 << 20;

  // This thread's pipe, made on first use; null when no pipe can be made (EMFILE).
  static ThreadPipe* Get();
  ~ThreadPipe();
  ThreadPipe(const ThreadPipe&) = delete;
  ThreadPipe& operator=(const ThreadPipe&) = delete;

  int read_fd() const { return fds_[0]; }
  int write_fd() const { return fds_[1]; }
  // Bytes the pipe holds without blocking (what F_SETPIPE_SZ granted).
  size_t capacity() const { return capacity_; }
  // Throws away whatever is in the pipe, by replacing it: after an error half-way.
  // False (and capacity() 0) when no new pipe could be made.
  bool Reset();

 private:
  ThreadPipe() = default;
  bool Open();
  void Close();
  int fds_[2] = {-1, -1};
  size_t capacity_ = 0;
};

// Puts `length` zero bytes into the pipe `pipe_fd` (vmsplice of static zero pages: no
// copy). Never waits: Busy if the pipe has no room, which means the caller put more into
// it than it promised.
Status PutZerosInPipe(int pipe_fd, uint64_t length);

}  // namespace skerry
