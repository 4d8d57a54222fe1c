#include "nbd/reply_writer.h"

#include <algorithm>

#include "nbd/protocol.h"

namespace skerry::nbd {

void EncodeSimpleReply(char* p, uint64_t cookie, uint32_t error) {
  PutBe32(p, kSimpleReplyMagic);
  PutBe32(p + 4, error);
  PutBe64(p + 8, cookie);
}

void EncodeChunkHeader(char* p, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length) {
  PutBe32(p, kStructuredReplyMagic);
  PutBe16(p + 4, flags);
  PutBe16(p + 6, type);
  PutBe64(p + 8, cookie);
  PutBe32(p + 16, length);
}

Status ReplyWriter::Send(const iovec* iov, int iovcnt) {
  std::lock_guard lock(send_mu_);
  if (broken()) return PeerClosed();
  Status st = transport_.WriteV(iov, iovcnt);
  if (!st.ok()) broken_.store(true, std::memory_order_relaxed);
  return st;
}

Status ReplyWriter::SendOk(uint64_t cookie) {
  char header[kSimpleReplyHeaderSize];
  EncodeSimpleReply(header, cookie, 0);
  iovec iov{header, sizeof header};
  return Send(&iov, 1);
}

Status ReplyWriter::SendError(uint64_t cookie, uint32_t error, std::string_view message) {
  if (!structured_) {
    char header[kSimpleReplyHeaderSize];
    EncodeSimpleReply(header, cookie, error);
    iovec iov{header, sizeof header};
    return Send(&iov, 1);
  }
  message = message.substr(0, kMaxStringLength);
  char header[kChunkHeaderSize + 6];
  EncodeChunkHeader(header, kReplyFlagDone, kReplyTypeError, cookie,
                    static_cast<uint32_t>(6 + message.size()));
  PutBe32(header + kChunkHeaderSize, error);
  PutBe16(header + kChunkHeaderSize + 4, static_cast<uint16_t>(message.size()));
  iovec iov[2] = {{header, sizeof header}, {const_cast<char*>(message.data()), message.size()}};
  return Send(iov, message.empty() ? 1 : 2);
}

void ReplyWriter::Bye() {
  std::lock_guard lock(send_mu_);
  if (!broken()) transport_.Bye();
}

}  // namespace skerry::nbd
