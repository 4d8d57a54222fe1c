#include "util/pipe.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace skerry {
namespace {
// Never written: vmsplice hands the kernel references to these pages, not a copy.
alignas(4096) const char kZeroPage[64 * 1024] = {};
}  // namespace

ThreadPipe* ThreadPipe::Get() {
  thread_local ThreadPipe pipe;
  if (pipe.capacity_ == 0 && !pipe.Open()) return nullptr;  // tried again on the next call
  return &pipe;
}

ThreadPipe::~ThreadPipe() { Close(); }

bool ThreadPipe::Open() {
  // Blocking, so splicing out into a socket waits for the socket like sendmsg does; the
  // fills pass SPLICE_F_NONBLOCK instead, so filling more than the capacity fails (EAGAIN)
  // rather than hangs the thread on a pipe that nobody else drains.
  if (pipe2(fds_, O_CLOEXEC) != 0) {
    fds_[0] = fds_[1] = -1;
    return false;
  }
  int granted = fcntl(fds_[1], F_SETPIPE_SZ, static_cast<int>(kPipeWantedCapacity));
  if (granted < 0) granted = fcntl(fds_[1], F_GETPIPE_SZ);  // a lower pipe-max-size: keep the default
  if (granted <= 0) {
    Close();
    return false;
  }
  capacity_ = static_cast<size_t>(granted);
  return true;
}

void ThreadPipe::Close() {
  for (int& fd : fds_) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  capacity_ = 0;
}

bool ThreadPipe::Reset() {
  Close();
  return Open();
}

Status PutZerosInPipe(int pipe_fd, uint64_t length) {
  while (length > 0) {
    iovec iov{const_cast<char*>(kZeroPage), static_cast<size_t>(std::min<uint64_t>(length, sizeof kZeroPage))};
    ssize_t n = vmsplice(pipe_fd, &iov, 1, SPLICE_F_NONBLOCK);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return Status::Busy("pipe full: more bytes put into it than it holds");
      return Status::FromErrno(errno, "vmsplice zeros");
    }
    length -= static_cast<uint64_t>(n);
  }
  return Status::OK();
}

}  // namespace skerry
