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

Status ReplySink::SendOk(uint64_t cookie) {
  char header[kSimpleReplyHeaderSize];
  EncodeSimpleReply(header, cookie, 0);
  iovec iov{header, sizeof header};
  return Send(&iov, 1);
}

Status ReplySink::SendError(uint64_t cookie, uint32_t error, std::string_view message) {
  if (!structured()) {
    char header[kSimpleReplyHeaderSize];
    EncodeSimpleReply(header, cookie, error);
    iovec iov{header, sizeof header};
    return Send(&iov, 1);
  }
  message = message.substr(0, kMaxErrorMessage);
  char header[kChunkHeaderSize + 6];
  EncodeChunkHeader(header, kReplyFlagDone, kReplyTypeError, cookie,
                    static_cast<uint32_t>(6 + message.size()));
  PutBe32(header + kChunkHeaderSize, error);
  PutBe16(header + kChunkHeaderSize + 4, static_cast<uint16_t>(message.size()));
  iovec iov[2] = {{header, sizeof header}, {const_cast<char*>(message.data()), message.size()}};
  return Send(iov, message.empty() ? 1 : 2);
}

template <class Write>
Status ReplyWriter::SendLocked(Write&& write) {
  std::lock_guard lock(send_mu_);
  if (broken()) return PeerClosed();
  StallScope stall(watch_, StallWatch::kReply, stall_timeout_);
  Status st = write();
  if (!st.ok()) broken_.store(true, std::memory_order_relaxed);
  return st;
}

Status ReplyWriter::Send(const iovec* iov, int iovcnt) {
  return SendLocked([&] { return transport_.WriteV(iov, iovcnt); });
}

Status ReplyWriter::SendSpliced(const iovec* iov, int iovcnt, int pipe_fd) {
  return SendLocked([&] { return transport_.WriteVSpliced(iov, iovcnt, pipe_fd); });
}

bool ReplyWriter::TrySendNow(const iovec* iov, int iovcnt, Status* status) {
  std::unique_lock lock(send_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  if (broken()) {
    *status = PeerClosed();
    return true;
  }
  if (!transport_.TryWriteVNow(iov, iovcnt, status)) return false;
  if (!status->ok()) broken_.store(true, std::memory_order_relaxed);
  return true;
}

Status NonBlockingReplySink::Send(const iovec* iov, int iovcnt) {
  Status st;
  if (!writer_.TrySendNow(iov, iovcnt, &st)) return Status::Busy("reply cannot be sent without waiting");
  sent_ = true;
  return st;
}

void ReplyWriter::Bye() {
  std::lock_guard lock(send_mu_);
  StallScope stall(watch_, StallWatch::kReply, stall_timeout_);  // TLS sends close_notify
  if (!broken()) transport_.Bye();
}

Status ReplyBatch::Send(const iovec* iov, int iovcnt) {
  for (int i = 0; i < iovcnt; ++i) {
    const char* base = static_cast<const char*>(iov[i].iov_base);
    size_t length = iov[i].iov_len;
    if (length == 0) continue;
    if (length <= kReplyCopyLimit) {
      // Appended to the previous arena piece when adjacent: headers of
      // consecutive small replies become one iovec entry.
      if (!pieces_.empty() && pieces_.back().external == nullptr &&
          pieces_.back().offset + pieces_.back().length == arena_.size()) {
        pieces_.back().length += length;
      } else {
        pieces_.push_back({nullptr, arena_.size(), length});
      }
      arena_.insert(arena_.end(), base, base + length);
    } else {
      pieces_.push_back({base, 0, length});
    }
    bytes_ += length;
  }
  return Status::OK();
}

Status ReplyBatch::Flush() {
  if (pieces_.empty()) return Status::OK();
  // Pointers into the arena are taken only now: it may have moved while growing.
  iov_.clear();
  for (const Piece& p : pieces_) {
    const char* base = p.external ? p.external : arena_.data() + p.offset;
    iov_.push_back({const_cast<char*>(base), p.length});
  }
  Status st = writer_.Send(iov_.data(), static_cast<int>(iov_.size()));
  pieces_.clear();
  arena_.clear();
  bytes_ = 0;
  return st;
}

}  // namespace skerry::nbd
