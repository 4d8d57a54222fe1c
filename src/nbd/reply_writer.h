// ReplyWriter: sends the replies of one connection, one whole reply at a time.
//
// Replies may go out in any order, but the bytes of two replies must never mix, so
// every Send holds the connection's send mutex for the one writev/sendmsg (or TLS
// record sequence) that carries a reply's header and data together. After a send
// fails the connection is broken: later sends fail at once without writing.
//
// Thread-safety: all methods may be called concurrently (worker threads and the
// reader thread both send).
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "nbd/transport.h"
#include "skerry/status.h"

namespace skerry::nbd {

// 16-byte simple reply header.
void EncodeSimpleReply(char* p, uint64_t cookie, uint32_t error);
// 20-byte structured reply chunk header.
void EncodeChunkHeader(char* p, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length);

class ReplyWriter {
 public:
  ReplyWriter(Transport& transport, bool structured_replies)
      : transport_(transport), structured_(structured_replies) {}

  bool structured() const { return structured_; }
  bool broken() const { return broken_.load(std::memory_order_relaxed); }

  // Sends one complete reply whose bytes are described by iov.
  Status Send(const iovec* iov, int iovcnt);
  // Success without payload (a simple reply, which the spec allows for every
  // command but READ even with structured replies on).
  Status SendOk(uint64_t cookie);
  // Failure: an NBD_REPLY_TYPE_ERROR chunk carrying `message` with structured
  // replies, else a simple reply with the error. Valid for every command, READ too.
  Status SendError(uint64_t cookie, uint32_t error, std::string_view message);
  // TLS close_notify once no more replies will be sent.
  void Bye();

 private:
  Transport& transport_;
  const bool structured_;
  std::mutex send_mu_;
  std::atomic<bool> broken_{false};
};

}  // namespace skerry::nbd
