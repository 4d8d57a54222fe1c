// Replies of one connection: ReplySink is where a request's reply goes,
// ReplyWriter sends it at once, ReplyBatch collects several for one send.
//
// Replies may go out in any order, but the bytes of two replies must never mix, so
// ReplyWriter holds the connection's send mutex for the one sendmsg (or TLS record
// sequence) that carries a reply's header and data together. After a send fails
// the connection is broken: later sends fail at once without writing.
//
// ReplyBatch serves the reader thread when it runs requests itself (transmission.h):
// their replies are queued while more requests are already buffered, and sent with
// one sendmsg before the reader would wait for the client. That saves a syscall
// per request, and the client is woken once per batch instead of once per reply.
//
// Thread-safety: ReplyWriter may be used by any number of threads at once (workers
// and the reader). A ReplyBatch belongs to the reader thread.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "nbd/stall_watch.h"
#include "nbd/transport.h"
#include "skerry/status.h"

namespace skerry::nbd {

// Entries of a reply up to this size may be temporaries (a header on the stack, an
// error message); longer ones must point into the request's own buffers, which
// outlive a batched reply.
inline constexpr size_t kReplyCopyLimit = 2048;
// Error messages sent to clients are cut to this length (the spec allows 4096).
inline constexpr size_t kMaxErrorMessage = 1024;

// 16-byte simple reply header.
void EncodeSimpleReply(char* p, uint64_t cookie, uint32_t error);
// 20-byte structured reply chunk header.
void EncodeChunkHeader(char* p, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length);

class ReplySink {
 public:
  virtual ~ReplySink() = default;

  // One complete reply whose bytes are described by iov (see kReplyCopyLimit).
  virtual Status Send(const iovec* iov, int iovcnt) = 0;
  // Whether SendSpliced works here.
  virtual bool can_splice() const { return false; }
  // Send, where entries with a null iov_base stand for that many bytes taken from the
  // pipe `pipe_fd` (Transport::WriteVSpliced). REQUIRES: can_splice().
  virtual Status SendSpliced(const iovec* /*iov*/, int /*iovcnt*/, int /*pipe_fd*/) {
    return Status::NotSupported("this reply cannot splice");
  }

  bool structured() const { return structured_; }
  // Success without payload (a simple reply, which the spec allows for every
  // command but READ even with structured replies on).
  Status SendOk(uint64_t cookie);
  // Failure: an NBD_REPLY_TYPE_ERROR chunk carrying `message` with structured
  // replies, else a simple reply with the error. Valid for every command, READ too.
  Status SendError(uint64_t cookie, uint32_t error, std::string_view message);

 protected:
  explicit ReplySink(bool structured_replies) : structured_(structured_replies) {}

 private:
  const bool structured_;
};

class ReplyWriter final : public ReplySink {
 public:
  // With `watch`, every send must end within `stall_timeout` (StallWatch::kReply).
  ReplyWriter(Transport& transport, bool structured_replies, StallWatch* watch = nullptr,
              std::chrono::milliseconds stall_timeout = std::chrono::milliseconds(0))
      : ReplySink(structured_replies), transport_(transport), watch_(watch), stall_timeout_(stall_timeout) {}

  Status Send(const iovec* iov, int iovcnt) override;
  bool can_splice() const override { return transport_.can_splice(); }
  Status SendSpliced(const iovec* iov, int iovcnt, int pipe_fd) override;
  // Sends the reply only if that cannot block (the send mutex is free and the socket has
  // room: Transport::TryWriteVNow); false when nothing was sent. For threads that must
  // never wait, such as a store's completion thread.
  bool TrySendNow(const iovec* iov, int iovcnt, Status* status);
  bool broken() const { return broken_.load(std::memory_order_relaxed); }
  // TLS close_notify once no more replies will be sent.
  void Bye();

 private:
  // Runs write() under the send mutex, unless the connection is broken already; a failed
  // write breaks it.
  template <class Write>
  Status SendLocked(Write&& write);

  Transport& transport_;
  StallWatch* const watch_;
  const std::chrono::milliseconds stall_timeout_;
  std::mutex send_mu_;
  std::atomic<bool> broken_{false};
};

// A ReplySink over ReplyWriter::TrySendNow: Send returns Busy, sending nothing, when
// the reply cannot go out at once. One reply per sink.
class NonBlockingReplySink final : public ReplySink {
 public:
  explicit NonBlockingReplySink(ReplyWriter& writer) : ReplySink(writer.structured()), writer_(writer) {}
  Status Send(const iovec* iov, int iovcnt) override;
  bool sent() const { return sent_; }

 private:
  ReplyWriter& writer_;
  bool sent_ = false;
};

class ReplyBatch final : public ReplySink {
 public:
  explicit ReplyBatch(ReplyWriter& writer) : ReplySink(writer.structured()), writer_(writer) {}

  // Queues the reply; nothing is sent until Flush.
  Status Send(const iovec* iov, int iovcnt) override;
  // Sends every queued reply with one ReplyWriter::Send, and empties the batch.
  Status Flush();
  bool empty() const { return pieces_.empty(); }
  size_t bytes() const { return bytes_; }

 private:
  struct Piece {
    const char* external;  // null: `offset` is into arena_
    size_t offset;
    size_t length;
  };
  ReplyWriter& writer_;
  std::vector<char> arena_;  // copies of short entries
  std::vector<Piece> pieces_;
  std::vector<iovec> iov_;
  size_t bytes_ = 0;
};

}  // namespace skerry::nbd
