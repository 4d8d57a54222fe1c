// Transport: the byte stream under one NBD connection.
//
// A connection starts on a plain socket (SocketTransport) and may switch to a TLS
// session on the same socket after NBD_OPT_STARTTLS (TlsTransport, tls.h). The
// protocol code above reads and writes through this interface and never sees
// which one it has.
//
// Thread-safety: one thread may read while another writes, which is how the
// transmission phase works (a reader thread; workers sending replies one at a time
// under the connection's send mutex). Two concurrent readers, or two concurrent
// writers, are not allowed.
#pragma once

#include <sys/uio.h>

#include <cstddef>

#include "skerry/status.h"

namespace skerry::nbd {

class Transport {
 public:
  virtual ~Transport() = default;

  // Reads 1..len bytes. PeerClosed() at end of stream; TimedOut when a receive
  // timeout set on the socket expires.
  virtual Result<size_t> ReadSome(char* buf, size_t len) = 0;
  // Writes every byte described by iov (any iovcnt; partial writes are resumed).
  virtual Status WriteV(const iovec* iov, int iovcnt) = 0;
  // Writes all of iov now if that cannot block: false, with nothing written, when the
  // send buffer has not clearly room for it, or the transport cannot tell (TLS).
  // `status` reports a failed write (which counts as done). Same threading as WriteV.
  virtual bool TryWriteVNow(const iovec* iov, int iovcnt, Status* status) { return false; }
  // Whether WriteVSpliced works (a plain socket; TLS must encrypt every byte itself).
  virtual bool can_splice() const { return false; }
  // WriteV, where entries with a null iov_base stand for iov_len bytes taken from the
  // pipe `pipe_fd` (spliced into the socket: the pages are not copied). REQUIRES: the
  // pipe holds exactly the bytes those entries add up to, in order.
  virtual Status WriteVSpliced(const iovec* /*iov*/, int /*iovcnt*/, int /*pipe_fd*/) {
    return Status::NotSupported("this connection cannot splice");
  }
  // Whether bytes were received that ReadSome has not returned yet (TLS decrypts whole
  // records): a read now would not wait for the socket.
  virtual bool has_buffered_input() const { return false; }
  // Orderly end of our sending side (TLS close_notify); no-op on a plain socket.
  // REQUIRES: no concurrent WriteV.
  virtual void Bye() {}
  virtual bool is_tls() const = 0;

  // Reads exactly len bytes.
  Status ReadFull(char* buf, size_t len);
  // Reads and throws away len bytes (a payload we refuse), in bounded chunks.
  Status Discard(size_t len);
  Status WriteAll(const char* buf, size_t len) {
    iovec iov{const_cast<char*>(buf), len};
    return WriteV(&iov, 1);
  }
};

// The client closed the connection (EOF or reset): the normal end of most sessions.
Status PeerClosed();
bool IsPeerClosed(const Status& status);

// A Transport over a connected stream socket it does not own.
class SocketTransport final : public Transport {
 public:
  explicit SocketTransport(int fd) : fd_(fd) {}
  Result<size_t> ReadSome(char* buf, size_t len) override;
  Status WriteV(const iovec* iov, int iovcnt) override;
  bool TryWriteVNow(const iovec* iov, int iovcnt, Status* status) override;
  bool can_splice() const override { return true; }
  Status WriteVSpliced(const iovec* iov, int iovcnt, int pipe_fd) override;
  bool is_tls() const override { return false; }

 private:
  // sendmsg until every byte of iov is out; `flags` adds e.g. MSG_MORE.
  Status SendAll(const iovec* iov, int iovcnt, int flags);
  // splice until `length` bytes went from the pipe into the socket.
  Status SpliceAll(int pipe_fd, size_t length, bool more);
  int fd_;
  int sndbuf_ = -1;  // SO_SNDBUF, read on first use (-1: not yet, 0: unknown)
};

// Advances (iov, iovcnt) past `done` bytes, editing the first remaining entry in
// place. Shared by the socket and TLS transports for resuming partial writes.
void AdvanceIovec(iovec*& iov, int& iovcnt, size_t done);

}  // namespace skerry::nbd
