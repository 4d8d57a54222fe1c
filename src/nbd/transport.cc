#include "nbd/transport.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace skerry::nbd {

Status PeerClosed() { return Status::IOError("connection closed by the client", ECONNRESET); }

bool IsPeerClosed(const Status& status) {
  return status.code() == Code::kIOError &&
         (status.sys_errno() == ECONNRESET || status.sys_errno() == EPIPE);
}

Status Transport::ReadFull(char* buf, size_t len) {
  while (len > 0) {
    SKERRY_ASSIGN_OR_RETURN(size_t n, ReadSome(buf, len));
    buf += n;
    len -= n;
  }
  return Status::OK();
}

Status Transport::Discard(size_t len) {
  char scratch[16384];
  while (len > 0) {
    SKERRY_ASSIGN_OR_RETURN(size_t n, ReadSome(scratch, std::min(len, sizeof scratch)));
    len -= n;
  }
  return Status::OK();
}

void AdvanceIovec(iovec*& iov, int& iovcnt, size_t done) {
  while (iovcnt > 0 && done >= iov->iov_len) {
    done -= iov->iov_len;
    ++iov;
    --iovcnt;
  }
  if (iovcnt > 0 && done > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + done;
    iov->iov_len -= done;
  }
}

Result<size_t> SocketTransport::ReadSome(char* buf, size_t len) {
  for (;;) {
    ssize_t n = ::recv(fd_, buf, len, 0);
    if (n > 0) return static_cast<size_t>(n);
    if (n == 0) return PeerClosed();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return Status::TimedOut("client sent nothing in time");
    if (errno == ECONNRESET || errno == EPIPE) return PeerClosed();
    return Status::FromErrno(errno, "recv");
  }
}

Status SocketTransport::WriteV(const iovec* iov_in, int iovcnt) { return SendAll(iov_in, iovcnt, 0); }

Status SocketTransport::SendAll(const iovec* iov_in, int iovcnt, int flags) {
  // sendmsg edits nothing, but resuming a partial write needs a mutable copy;
  // the common reply has 1-4 entries, so copy onto the stack when it fits.
  iovec local[16];
  std::vector<iovec> heap;
  iovec* iov = local;
  if (iovcnt > static_cast<int>(std::size(local))) {
    heap.assign(iov_in, iov_in + iovcnt);
    iov = heap.data();
  } else {
    std::copy(iov_in, iov_in + iovcnt, local);
  }
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = std::min(iovcnt, IOV_MAX);
    // MSG_NOSIGNAL: a client that vanished must cost us an EPIPE, not the process.
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) return PeerClosed();
      return Status::FromErrno(errno, "sendmsg");
    }
    AdvanceIovec(iov, iovcnt, static_cast<size_t>(n));
  }
  return Status::OK();
}

Status SocketTransport::SpliceAll(int pipe_fd, size_t length, bool more) {
  while (length > 0) {
    // The socket is blocking: like sendmsg, this waits while the client is behind.
    ssize_t n = ::splice(pipe_fd, nullptr, fd_, nullptr, length, more ? SPLICE_F_MORE : 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) return PeerClosed();
      return Status::FromErrno(errno, "splice to socket");
    }
    if (n == 0) return Status::IOError("splice to socket: the pipe ran dry");
    length -= static_cast<size_t>(n);
  }
  return Status::OK();
}

Status SocketTransport::WriteVSpliced(const iovec* iov, int iovcnt, int pipe_fd) {
  int i = 0;
  while (i < iovcnt) {
    int j = i;
    if (iov[i].iov_base == nullptr) {
      SKERRY_RETURN_IF_ERROR(SpliceAll(pipe_fd, iov[i].iov_len, i + 1 < iovcnt));
      ++j;
    } else {
      while (j < iovcnt && iov[j].iov_base != nullptr) ++j;
      // MSG_MORE: a header and the data spliced after it leave in the same segments.
      SKERRY_RETURN_IF_ERROR(SendAll(iov + i, j - i, j < iovcnt ? MSG_MORE : 0));
    }
    i = j;
  }
  return Status::OK();
}

bool SocketTransport::TryWriteVNow(const iovec* iov, int iovcnt, Status* status) {
  size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
  if (sndbuf_ < 0) {
    int v = 0;
    socklen_t len = sizeof v;
    sndbuf_ = ::getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &v, &len) == 0 ? v : 0;
  }
  // Room for twice the reply (the kernel counts buffer overhead too) in what is queued
  // and unsent: then one non-blocking sendmsg takes all of it.
  int queued = 0;
  if (iovcnt > IOV_MAX || sndbuf_ <= 0 || ::ioctl(fd_, SIOCOUTQ, &queued) != 0 ||
      static_cast<size_t>(sndbuf_) < static_cast<size_t>(queued) + 2 * total + 4096)
    return false;
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = iovcnt;
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;  // nothing written
    *status = errno == EPIPE || errno == ECONNRESET ? PeerClosed() : Status::FromErrno(errno, "sendmsg");
    return true;
  }
  if (static_cast<size_t>(n) == total) {
    *status = Status::OK();
    return true;
  }
  // Part went out despite the room (should not happen): the rest must follow before any
  // other reply, so finish it blocking.
  std::vector<iovec> rest(iov, iov + iovcnt);
  iovec* p = rest.data();
  int cnt = iovcnt;
  AdvanceIovec(p, cnt, static_cast<size_t>(n));
  *status = WriteV(p, cnt);
  return true;
}

}  // namespace skerry::nbd
