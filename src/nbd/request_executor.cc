#include "nbd/request_executor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/ioctl.h>

#include <algorithm>

#include "nbd/errors.h"
#include "nbd/protocol.h"
#include "util/fan_in.h"
#include "util/pipe.h"

namespace skerry::nbd {
namespace {

uint32_t ExtentState(const Extent& e) {
  // A hole in a skerry map reads as zeros.
  return (e.hole ? kStateHole | kStateZero : 0) | (e.zero ? kStateZero : 0);
}

void AddRun(std::vector<StatusRun>* runs, uint64_t offset, uint64_t length, uint32_t state) {
  if (length == 0) return;
  if (!runs->empty()) {
    StatusRun& last = runs->back();
    if (last.state == state && last.offset + last.length == offset) {
      last.length += length;
      return;
    }
  }
  runs->push_back({offset, length, state});
}

// Where a run's data goes in the request's buffer.
std::span<char> RunData(const RequestHeader& h, RequestBuffers& b, const StatusRun& run) {
  return std::span<char>(b.data.data() + (run.offset - h.offset), run.length);
}

}  // namespace

void ExtentsToRuns(const std::vector<Extent>& extents, uint64_t start, uint64_t end, uint32_t mask,
                   std::vector<StatusRun>* runs) {
  runs->clear();
  uint64_t pos = start;
  for (const Extent& e : extents) {
    if (pos >= end) break;
    uint64_t e_begin = std::max(e.offset, pos);
    uint64_t e_end = e.length > end - std::min(e.offset, end) ? end : e.offset + e.length;
    if (e_end <= e_begin) continue;
    AddRun(runs, pos, e_begin - pos, 0);  // a gap the volume did not describe: data
    AddRun(runs, e_begin, e_end - e_begin, ExtentState(e) & mask);
    pos = e_end;
  }
  if (pos < end) AddRun(runs, pos, end - pos, 0);
}

uint64_t RequestMemoryCost(const RequestHeader& h) {
  switch (h.type) {
    case kCmdRead:
    case kCmdWrite: return h.length;
    case kCmdBlockStatus: {
      uint64_t extents = std::min<uint64_t>(h.length, kMaxStatusRange) / skerry::kMinBlockSize + 2;
      return extents * (sizeof(Extent) + sizeof(StatusRun) + 8);
    }
    default: return 0;
  }
}

Status RequestExecutor::Execute(const RequestHeader& h, RequestBuffers& b, ReplySink& sink) {
  bool fua = h.flags & kCmdFlagFua;
  Status st;
  switch (h.type) {
    case kCmdRead: return Read(h, b, sink);
    case kCmdBlockStatus: return BlockStatus(h, b, sink);
    case kCmdWrite:
      st = volume_.Write(h.offset, std::span<const char>(b.data.data(), h.length), fua);
      break;
    case kCmdWriteZeroes:
      // NO_HOLE: the client wants the blocks to stay allocated. FAST_ZERO needs no
      // check: zeroing is a map operation, never slower than writing zeros.
      st = volume_.WriteZeroes(h.offset, h.length, !(h.flags & kCmdFlagNoHole), fua);
      break;
    case kCmdTrim:
      st = volume_.Trim(h.offset, h.length);
      if (st.ok() && fua) st = volume_.Flush();  // Trim has no FUA of its own
      break;
    case kCmdFlush:
      // Nothing is ever written to a read-only export, so nothing needs flushing.
      if (!(limits_.transmission_flags & kTxReadOnly)) st = volume_.Flush();
      break;
    case kCmdCache:
      break;  // a hint only; the range was checked. Volumes keep no cache worth warming
    default:
      st = Status::InvalidArgument("unknown command");  // unreachable after validation
  }
  return Finish(h, st, sink);
}

Status RequestExecutor::Finish(const RequestHeader& h, const Status& result, ReplySink& sink) {
  if (result.ok()) return sink.SendOk(h.cookie);
  spdlog::warn("nbd: {}: {} at {} length {} failed: {}", peer_, CommandName(h.type), h.offset,
               h.length, result.ToString());
  return sink.SendError(h.cookie, NbdErrorFromStatus(result), result.ToString());
}

void RequestExecutor::PlanRuns(const RequestHeader& h, RequestBuffers& b, bool structured) {
  b.runs.clear();
  if (h.length == 0) return;
  // DF asks for a single content chunk, so holes are sent as explicit zeros.
  if (structured && !(h.flags & kCmdFlagDf) && h.length >= kSparseReadMinimum) {
    auto extents = volume_.Extents(h.offset, h.length);
    // Without extents every byte is simply read: sparseness is an optimisation.
    if (extents.ok()) ExtentsToRuns(*extents, h.offset, h.offset + h.length, kStateZero, &b.runs);
  }
  if (b.runs.empty()) b.runs.push_back({h.offset, h.length, 0});
}

void RequestExecutor::PlanRead(const RequestHeader& h, RequestBuffers& b, bool structured) {
  PlanRuns(h, b, structured);
  b.data.Resize(h.length);
}

Status RequestExecutor::Read(const RequestHeader& h, RequestBuffers& b, ReplySink& sink) {
  if (h.length >= kSpliceReadMinimum && caps_.pipe_reads && sink.can_splice()) {
    ThreadPipe* pipe = ThreadPipe::Get();
    if (pipe && h.length <= pipe->capacity()) return SplicedRead(h, b, sink, *pipe);
  }
  return CopiedRead(h, b, sink);
}

Status RequestExecutor::CopiedRead(const RequestHeader& h, RequestBuffers& b, ReplySink& sink) {
  PlanRead(h, b, sink.structured());
  for (const StatusRun& run : b.runs) {
    if (run.state & kStateZero) continue;
    Status st = volume_.Read(run.offset, RunData(h, b, run));
    if (!st.ok()) return Finish(h, st, sink);  // nothing sent yet: one error reply says it all
  }
  return SendRead(h, b, sink);
}

Status RequestExecutor::SplicedRead(const RequestHeader& h, RequestBuffers& b, ReplySink& sink, ThreadPipe& pipe) {
  PlanRuns(h, b, sink.structured());
  uint64_t in_pipe = 0;
  Status st;
  for (const StatusRun& run : b.runs) {
    if (run.state & kStateZero) continue;
    st = fast_->ReadToPipe(run.offset, run.length, pipe.write_fd());
    if (!st.ok()) break;
    in_pipe += run.length;
  }
  // What the pipe holds must be exactly what the reply says, or the splice into the
  // socket would wait forever for bytes that never come (cheap to make sure).
  int queued = -1;
  if (st.ok() && (ioctl(pipe.read_fd(), FIONREAD, &queued) != 0 || static_cast<uint64_t>(queued) != in_pipe))
    st = Status::IOError(fmt::format("internal: the read's pipe holds {} bytes, not {}", queued, in_pipe));
  if (!st.ok()) {
    pipe.Reset();  // throw away what part of the data went in
    // Full although the read's bytes fit: splice and vmsplice take a slot per page piece,
    // so a read of about the pipe's size that does not start and end on a page (or that
    // meets the end of an object mid-page) can need one slot more than its bytes fill.
    if (st.code() == Code::kBusy) return CopiedRead(h, b, sink);
    return Finish(h, st, sink);  // nothing sent yet: one error reply says it all
  }
  st = SendRead(h, b, sink, pipe.read_fd());
  if (!st.ok()) pipe.Reset();  // the connection is gone; the pipe may still hold data
  return st;
}

void RequestExecutor::StartRead(const RequestHeader& h, RequestBuffers& b, bool structured, Done done) {
  PlanRead(h, b, structured);
  // The data runs are read independently; `done` runs once all have completed.
  FanIn* reads = FanIn::Start(std::move(done));
  for (const StatusRun& run : b.runs) {
    if (run.state & kStateZero) continue;
    reads->Add();
    fast_->ReadAsync(run.offset, RunData(h, b, run), [reads](Status st) { reads->Finish(std::move(st)); });
  }
  reads->Finish(Status::OK());
}

bool RequestExecutor::TryStartWrite(const RequestHeader& h, RequestBuffers& b, Done done) {
  if (!caps_.async_writes || (h.flags & kCmdFlagFua)) return false;  // FUA flushes: the blocking path
  return fast_->TryWriteAsync(h.offset, std::span<const char>(b.data.data(), h.length), std::move(done));
}

Status RequestExecutor::FinishRead(const RequestHeader& h, RequestBuffers& b, const Status& result,
                                   ReplySink& sink) {
  if (!result.ok()) return Finish(h, result, sink);
  return SendRead(h, b, sink);
}

Status RequestExecutor::SendRead(const RequestHeader& h, RequestBuffers& b, ReplySink& sink, int pipe_fd) {
  // Where a data run's bytes are: in b.data, or next in the pipe (a null entry).
  auto data = [&](uint64_t offset, uint64_t length) {
    return iovec{pipe_fd >= 0 ? nullptr : b.data.data() + (offset - h.offset), length};
  };
  auto send = [&](const iovec* iov, int iovcnt) {
    return pipe_fd >= 0 ? sink.SendSpliced(iov, iovcnt, pipe_fd) : sink.Send(iov, iovcnt);
  };
  if (!sink.structured()) {
    char header[kSimpleReplyHeaderSize];
    EncodeSimpleReply(header, h.cookie, 0);
    iovec iov[2] = {{header, sizeof header}, data(h.offset, h.length)};
    return send(iov, h.length ? 2 : 1);
  }
  if (h.length == 0) {  // a content chunk must describe at least one byte
    char header[kChunkHeaderSize];
    EncodeChunkHeader(header, kReplyFlagDone, kReplyTypeNone, h.cookie, 0);
    iovec iov{header, sizeof header};
    return sink.Send(&iov, 1);
  }
  // Per run: chunk header (20) + offset (8) [+ hole size (4)].
  constexpr size_t kSlot = kChunkHeaderSize + 12;
  b.meta.resize(b.runs.size() * kSlot);
  b.iov.clear();
  for (size_t i = 0; i < b.runs.size(); ++i) {
    const StatusRun& run = b.runs[i];
    char* p = b.meta.data() + i * kSlot;
    uint16_t flags = i + 1 == b.runs.size() ? kReplyFlagDone : 0;
    if (run.state & kStateZero) {
      EncodeChunkHeader(p, flags, kReplyTypeOffsetHole, h.cookie, 12);
      PutBe64(p + kChunkHeaderSize, run.offset);
      PutBe32(p + kChunkHeaderSize + 8, static_cast<uint32_t>(run.length));
      b.iov.push_back({p, kChunkHeaderSize + 12});
    } else {
      EncodeChunkHeader(p, flags, kReplyTypeOffsetData, h.cookie,
                        static_cast<uint32_t>(8 + run.length));
      PutBe64(p + kChunkHeaderSize, run.offset);
      b.iov.push_back({p, kChunkHeaderSize + 8});
      b.iov.push_back(data(run.offset, run.length));
    }
  }
  return send(b.iov.data(), static_cast<int>(b.iov.size()));
}

Status RequestExecutor::BlockStatus(const RequestHeader& h, RequestBuffers& b, ReplySink& sink) {
  uint64_t length = std::min<uint64_t>(h.length, kMaxStatusRange);
  auto extents = volume_.Extents(h.offset, length);
  if (!extents.ok()) return Finish(h, extents.status(), sink);
  ExtentsToRuns(*extents, h.offset, h.offset + length, kStateHole | kStateZero, &b.runs);
  size_t count = std::min(b.runs.size(), kMaxStatusDescriptors);
  if (h.flags & kCmdFlagReqOne) count = 1;  // runs cover [offset, offset+length): never longer

  // Chunk header, context id, then (length, flags) per descriptor. Each run lies
  // within the request, so its length fits the 32-bit field.
  b.meta.resize(kChunkHeaderSize + 4 + 8 * count);
  char* p = b.meta.data();
  EncodeChunkHeader(p, kReplyFlagDone, kReplyTypeBlockStatus, h.cookie,
                    static_cast<uint32_t>(4 + 8 * count));
  PutBe32(p + kChunkHeaderSize, kAllocationContextId);
  for (size_t i = 0; i < count; ++i) {
    char* d = p + kChunkHeaderSize + 4 + 8 * i;
    PutBe32(d, static_cast<uint32_t>(b.runs[i].length));
    PutBe32(d + 4, b.runs[i].state);
  }
  iovec iov{p, b.meta.size()};
  return sink.Send(&iov, 1);
}

}  // namespace skerry::nbd
