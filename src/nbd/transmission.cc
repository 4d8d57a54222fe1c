#include "nbd/transmission.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>

#include "nbd/buffered_reader.h"
#include "nbd/protocol.h"

namespace skerry::nbd {
namespace {

// Read-ahead of the request stream: 16 queued 4 KiB writes, or hundreds of headers.
constexpr size_t kReadAhead = 64 * 1024;
// Buffers up to this size are always kept for reuse; larger ones only within
// TransmissionLimits::retained_buffer_bytes.
constexpr size_t kAlwaysRetained = 64 * 1024;
// A request's other buffers (reply chunk headers, BLOCK_STATUS runs and descriptors, iovecs)
// are kept only up to this size: an ordinary reply needs a few hundred bytes, while one
// BLOCK_STATUS over a fragmented GiB grows them to hundreds of KiB, which 256 idle request
// objects would otherwise keep per connection, outside every budget.
constexpr size_t kSmallBuffersRetained = 16 * 1024;

template <class T>
void ReleaseIfLarge(std::vector<T>& v) {
  if (v.capacity() * sizeof(T) > kSmallBuffersRetained) std::vector<T>().swap(v);
}
// Requests up to this size may run on the reader (InlinePolicy decides whether they do).
constexpr uint32_t kInlineMaxLength = 64 * 1024;

// READ and WRITE up to kInlineMaxLength without FUA: the requests the reader may run
// itself, and the only ones whose service times InlinePolicy learns from.
bool MayRunInline(const RequestHeader& h) {
  return (h.type == kCmdRead || h.type == kCmdWrite) && h.length <= kInlineMaxLength &&
         !(h.flags & kCmdFlagFua);
}

// Passes a reply on to `sink`, noting when the request's service ended: at its first
// send, so that InlinePolicy learns how long the volume took, not the client or the
// socket (a worker's send waits for the connection's send lock and for socket room,
// which an inline reply, batched, does not). A spliced read has filled its pipe before
// it sends, so the same holds for it.
class ServiceClock final : public ReplySink {
 public:
  explicit ServiceClock(ReplySink& sink)
      : ReplySink(sink.structured()), sink_(sink), start_(std::chrono::steady_clock::now()) {}
  Status Send(const iovec* iov, int iovcnt) override {
    Mark();
    return sink_.Send(iov, iovcnt);
  }
  bool can_splice() const override { return sink_.can_splice(); }
  Status SendSpliced(const iovec* iov, int iovcnt, int pipe_fd) override {
    Mark();
    return sink_.SendSpliced(iov, iovcnt, pipe_fd);
  }
  uint64_t ServiceNs() {
    Mark();  // a request that sent nothing (the connection broke) ends now
    return std::chrono::duration_cast<std::chrono::nanoseconds>(end_ - start_).count();
  }

 private:
  void Mark() {
    if (end_ == std::chrono::steady_clock::time_point()) end_ = std::chrono::steady_clock::now();
  }
  ReplySink& sink_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point end_;
};

// An asynchronous read's completion sends its reply itself while at most this many
// requests of the connection are in flight: at a low depth that saves the client a
// thread hand-off, while at a high one the completion thread would send every reply
// while librados waits for it to complete the next reads, which measured slower on
// RADOS (bench/results/2026-11-rados-async-reads.md).
constexpr size_t kDirectReplyMaxInflight = 4;
// A batch of inline replies is sent at the latest at this size, so the client
// sees its first replies early in a long burst.
constexpr size_t kMaxBatchBytes = 256 * 1024;
constexpr size_t kMaxBatchRequests = 64;

const char* RejectionText(uint32_t error) {
  switch (error) {
    case kEperm: return "the export is read-only";
    case kEnospc: return "write past the end of the export";
    case kEoverflow: return "request longer than the maximum payload";
    default: return "invalid request: unknown command, bad flags or range";
  }
}

}  // namespace

Transmission::Transmission(Transport& transport, int fd, const NegotiatedExport& exp,
                           WorkerPool& pool, const TransmissionLimits& limits, std::string peer,
                           StallWatch* watch)
    : transport_(transport),
      fd_(fd),
      pool_(pool),
      limits_(limits),
      peer_(std::move(peer)),
      export_limits_{exp.size, exp.transmission_flags, exp.structured_replies,
                     exp.allocation_context},
      watch_(watch),
      writer_(transport, exp.structured_replies, watch, limits.stall_timeout),
      batch_(writer_),
      executor_(*exp.volume, export_limits_, peer_),
      inline_policy_(limits.inline_quick_ns),
      busy_poll_(limits.spin_slots != nullptr ? limits.busy_poll_ns : 0) {}

Transmission::~Transmission() { WaitIdle(); }

Transmission::Outcome Transmission::Run() {
  Outcome out;
  BufferedReader reader(transport_, kReadAhead);
  for (;;) {
    Status st = WaitForRequest(reader, &out);
    if (!st.ok()) {
      out.status = EndStatus(st);
      break;
    }
    RequestHeader h;
    if (!DecodeRequestHeader(reader.data(), &h)) {
      out.status = Status::InvalidArgument("bad request magic");
      break;
    }
    reader.Consume(kRequestHeaderSize);
    ++out.requests;
    if (h.type == kCmdDisc) {
      out.disconnect_requested = true;
      break;
    }
    uint32_t error = ValidateRequest(h, export_limits_);
    st = error != 0 ? Reject(reader, h, error) : Accept(reader, h, &out);
    if (!st.ok()) {
      out.status = EndStatus(st);
      break;
    }
  }
  FlushBatch();
  WaitIdle();
  writer_.Bye();
  return out;
}

Status Transmission::WaitForRequest(BufferedReader& reader, Outcome* out) {
  if (reader.available() >= kRequestHeaderSize) return Status::OK();
  // Before waiting for the client, answer what it is waiting for.
  FlushBatch();
  if (!busy_poll_.enabled()) return reader.Fill(kRequestHeaderSize);
  const auto start = std::chrono::steady_clock::now();
  // Spin only when nothing is in flight: then the client has every reply and its next
  // request is all that can come. With requests at workers, the cores are theirs.
  uint64_t window = busy_poll_.window_ns();
  if (window > 0 && !transport_.has_buffered_input() && InFlight() == 0 && limits_.spin_slots->TryTake()) {
    ++out->spins;
    if (SpinUntilReadable(fd_, window)) ++out->caught_by_spin;
    limits_.spin_slots->Give();
  }
  Status st = reader.Fill(kRequestHeaderSize);
  busy_poll_.Record(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count()));
  return st;
}

Status Transmission::EndStatus(const Status& st) const {
  // The client leaving, or a send that failed because it left, is a normal end.
  return IsPeerClosed(st) || writer_.broken() ? Status::OK() : st;
}

Status Transmission::Reject(BufferedReader& reader, const RequestHeader& h, uint32_t error) {
  if (PayloadLength(h) > 0) {
    // The payload must be consumed to stay in step, but a client announcing more
    // than we ever accept is not worth reading: hang up instead.
    if (h.length > kMaxPayload) {
      return Status::InvalidArgument("write of " + std::to_string(h.length) +
                                     " bytes is larger than the maximum payload");
    }
    if (reader.available() < h.length) FlushBatch();
    StallScope stall(watch_, StallWatch::kPayload, limits_.stall_timeout);
    SKERRY_RETURN_IF_ERROR(reader.Discard(h.length));
  }
  spdlog::debug("nbd: {}: rejected {} flags {:#x} at {} length {}: error {}", peer_,
                CommandName(h.type), h.flags, h.offset, h.length, error);
  return writer_.SendError(h.cookie, error, RejectionText(error));
}

Status Transmission::Accept(BufferedReader& reader, const RequestHeader& h, Outcome* out) {
  uint64_t cost = RequestMemoryCost(h);
  Request* req = TryAcquireRequest(cost);
  if (req == nullptr) {
    FlushBatch();  // batched requests hold room too: release them before waiting
    req = AcquireRequest(cost);
  }
  req->header = h;
  if (h.type == kCmdWrite) {
    if (reader.available() < h.length) FlushBatch();
    req->buffers.data.Resize(h.length);
    // The payload's memory is taken from the budgets already: it must come in time.
    StallScope stall(watch_, StallWatch::kPayload, limits_.stall_timeout);
    Status st = reader.ReadInto(req->buffers.data.data(), h.length);
    if (!st.ok()) {
      ReleaseRequest(req);
      return st;
    }
  }
  if (h.type == kCmdRead && executor_.async_reads()) {
    StartAsyncRead(req);
  } else if (h.type == kCmdWrite && executor_.async_writes() && TryStartAsyncWrite(req)) {
    // started; its completion answers it
  } else if (ShouldRunInline(h, reader)) {
    ++out->run_on_reader;
    Execute(req, batch_);
    batched_.push_back(req);
    if (batch_.bytes() >= kMaxBatchBytes || batched_.size() >= kMaxBatchRequests) FlushBatch();
  } else {
    pool_.Submit([this, req] {
      Execute(req, writer_);
      ReleaseRequest(req);
    });
  }
  return Status::OK();
}

void Transmission::StartAsyncRead(Request* req) {
  executor_.StartRead(req->header, req->buffers, writer_.structured(), [this, req](Status st) {
    FinishAsync(req, st, [this, req, st](ReplySink& sink) {
      return executor_.FinishRead(req->header, req->buffers, st, sink);
    });
  });
}

bool Transmission::TryStartAsyncWrite(Request* req) {
  return executor_.TryStartWrite(req->header, req->buffers, [this, req](Status st) {
    FinishAsync(req, st, [this, req, st](ReplySink& sink) { return executor_.FinishWrite(req->header, st, sink); });
  });
}

void Transmission::FinishAsync(Request* req, const Status& st, std::function<Status(ReplySink&)> send) {
  // On the store's completion thread, which must not block. At a low queue depth the
  // reply of a successful request goes out from here when the socket takes it at once:
  // the client waits for it, and a hand-off would add a thread switch to its latency.
  // Otherwise, and for errors (logged by the executor, once), a worker sends it: that send
  // may wait for a slow client, and at high depths workers send in parallel while the
  // store's thread goes on completing.
  if (st.ok() && InFlight() <= kDirectReplyMaxInflight) {
    NonBlockingReplySink now(writer_);
    Status sent = send(now);
    if (now.sent()) {
      if (!sent.ok()) Break();
      ReleaseRequest(req);  // last touch of this Transmission on this thread
      return;
    }
  }
  pool_.Post([this, req, send = std::move(send)] {
    if (!send(writer_).ok()) Break();
    ReleaseRequest(req);
  });
}

size_t Transmission::InFlight() {
  std::lock_guard lock(mu_);
  return inflight_;
}

void Transmission::FlushBatch() {
  if (batched_.empty()) return;
  if (!batch_.Flush().ok()) Break();
  for (Request* req : batched_) ReleaseRequest(req);
  batched_.clear();
}

bool Transmission::ShouldRunInline(const RequestHeader& h, const BufferedReader& reader) {
  if (!MayRunInline(h)) return false;
  switch (inline_policy_.Decide()) {
    case InlinePolicy::Decision::kReader: return true;
    case InlinePolicy::Decision::kWorker: return false;
    case InlinePolicy::Decision::kReaderIfAlone:
      // The only request in flight (ours is counted) and nothing more read ahead.
      return reader.available() == 0 && batched_.empty() && InFlight() == 1;
  }
  return false;
}

void Transmission::Execute(Request* req, ReplySink& sink) {
  const RequestHeader& h = req->header;
  // Only requests the reader may run itself feed the policy that decides whether it does.
  if (!MayRunInline(h)) {
    if (!executor_.Execute(h, req->buffers, sink).ok()) Break();
    return;
  }
  ServiceClock clock(sink);
  if (!executor_.Execute(h, req->buffers, clock).ok()) Break();
  inline_policy_.Record(clock.ServiceNs());
}

void Transmission::Break() {
  // Wakes the reader blocked in recv; it then drains and ends the connection.
  ::shutdown(fd_, SHUT_RDWR);
}

bool Transmission::HasRoom(uint64_t cost) const {
  // A request bigger than the byte budget still runs, alone.
  return inflight_ < limits_.max_inflight_requests &&
         (inflight_ == 0 || inflight_bytes_ + cost <= limits_.max_inflight_bytes);
}

Transmission::Request* Transmission::TakeRequest(uint64_t cost) {
  ++inflight_;
  inflight_bytes_ += cost;
  Request* req;
  if (free_.empty()) {
    all_.push_back(std::make_unique<Request>());
    req = all_.back().get();
  } else {
    req = free_.back();
    free_.pop_back();
  }
  req->cost = cost;
  req->capacity_at_start = req->buffers.data.capacity();
  return req;
}

Transmission::Request* Transmission::TryAcquireRequest(uint64_t cost) {
  std::lock_guard lock(mu_);
  if (!HasRoom(cost)) return nullptr;
  if (limits_.server_budget && !limits_.server_budget->TryReserve(cost)) return nullptr;
  return TakeRequest(cost);
}

Transmission::Request* Transmission::AcquireRequest(uint64_t cost) {
  Request* req;
  {
    std::unique_lock lock(mu_);
    while (!HasRoom(cost)) {
      reader_waiting_ = true;
      room_.wait(lock);
    }
    reader_waiting_ = false;
    req = TakeRequest(cost);
  }
  // Outside mu_: what frees the server's budget is other requests completing, this
  // connection's among them, and their release takes mu_.
  if (limits_.server_budget) limits_.server_budget->Reserve(cost);
  return req;
}

void Transmission::ReleaseRequest(Request* req) {
  std::lock_guard lock(mu_);
  size_t capacity = req->buffers.data.capacity();
  retained_bytes_ += capacity - req->capacity_at_start;
  ReleaseIfLarge(req->buffers.meta);
  ReleaseIfLarge(req->buffers.runs);
  ReleaseIfLarge(req->buffers.iov);
  if (capacity > kAlwaysRetained && retained_bytes_ > limits_.retained_buffer_bytes) {
    retained_bytes_ -= capacity;
    req->buffers.data.Clear();
  }
  // Before the connection can look idle: the budget outlives every connection's requests.
  if (limits_.server_budget) limits_.server_budget->Release(req->cost);
  --inflight_;
  inflight_bytes_ -= req->cost;
  free_.push_back(req);
  // Notify before unlocking: once the lock is free the reader may find the
  // connection idle and destroy this Transmission, condition variable included.
  if (reader_waiting_) room_.notify_one();
}

void Transmission::WaitIdle() {
  std::unique_lock lock(mu_);
  while (inflight_ > 0) {
    reader_waiting_ = true;
    room_.wait(lock);
  }
  reader_waiting_ = false;
}

}  // namespace skerry::nbd
