#include "nbd/transmission.h"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "nbd/buffered_reader.h"
#include "nbd/protocol.h"

namespace skerry::nbd {
namespace {

// Read-ahead of the request stream: 16 queued 4 KiB writes, or hundreds of headers.
constexpr size_t kReadAhead = 64 * 1024;
// Buffers up to this size are always kept for reuse; larger ones only within
// TransmissionLimits::retained_buffer_bytes.
constexpr size_t kAlwaysRetained = 64 * 1024;
// Inline execution (see transmission.h): requests up to this size, while the
// average service time stays below roughly the cost of a thread handoff.
constexpr uint32_t kInlineMaxLength = 64 * 1024;
constexpr uint64_t kInlineMaxServiceNs = 20'000;

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
                           WorkerPool& pool, const TransmissionLimits& limits, std::string peer)
    : transport_(transport),
      fd_(fd),
      export_(exp),
      pool_(pool),
      limits_(limits),
      peer_(std::move(peer)),
      export_limits_{exp.size, exp.transmission_flags, exp.structured_replies,
                     exp.allocation_context},
      writer_(transport, exp.structured_replies),
      executor_(*exp.volume, export_limits_, writer_, peer_) {}

Transmission::~Transmission() { WaitIdle(); }

Transmission::Outcome Transmission::Run() {
  Outcome out;
  BufferedReader reader(transport_, kReadAhead);
  for (;;) {
    Status st = reader.Fill(kRequestHeaderSize);
    if (!st.ok()) {
      if (!IsPeerClosed(st) && !writer_.broken()) out.status = st;
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

    if (uint32_t error = ValidateRequest(h, export_limits_); error != 0) {
      if (PayloadLength(h) > 0) {
        // The payload must be consumed to stay in step, but a client announcing
        // more than we ever accept is not worth reading: hang up instead.
        if (h.length > kMaxPayload) {
          out.status = Status::InvalidArgument("write of " + std::to_string(h.length) +
                                               " bytes is larger than the maximum payload");
          break;
        }
        st = reader.Discard(h.length);
        if (!st.ok()) {
          if (!IsPeerClosed(st)) out.status = st;
          break;
        }
      }
      spdlog::debug("nbd: {}: rejected {} flags {:#x} at {} length {}: error {}", peer_,
                    CommandName(h.type), h.flags, h.offset, h.length, error);
      if (!writer_.SendError(h.cookie, error, RejectionText(error)).ok()) break;
      continue;
    }

    size_t cost = (h.type == kCmdRead || h.type == kCmdWrite) ? h.length : 0;
    Request* req = AcquireRequest(cost);
    req->header = h;
    if (h.type == kCmdWrite) {
      req->buffers.data.Resize(h.length);
      st = reader.ReadInto(req->buffers.data.data(), h.length);
      if (!st.ok()) {
        ReleaseRequest(req);
        if (!IsPeerClosed(st)) out.status = st;
        break;
      }
    }
    if (ShouldRunInline(h)) {
      Execute(req);
    } else {
      pool_.Submit([this, req] { Execute(req); });
    }
  }
  WaitIdle();
  writer_.Bye();
  return out;
}

bool Transmission::ShouldRunInline(const RequestHeader& h) const {
  return (h.type == kCmdRead || h.type == kCmdWrite) && h.length <= kInlineMaxLength &&
         !(h.flags & kCmdFlagFua) &&
         service_ns_.load(std::memory_order_relaxed) < kInlineMaxServiceNs;
}

void Transmission::Execute(Request* req) {
  const RequestHeader& h = req->header;
  bool timed = h.type == kCmdRead || h.type == kCmdWrite;
  auto start = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  if (!executor_.Execute(h, req->buffers).ok()) Break();
  if (timed) {
    // Per KiB-ish fairness is not needed: only small requests run inline, and
    // big ones would only make the average err towards dispatching.
    uint64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
    uint64_t avg = service_ns_.load(std::memory_order_relaxed);
    service_ns_.store(avg - avg / 8 + ns / 8, std::memory_order_relaxed);
  }
  ReleaseRequest(req);
}

void Transmission::Break() {
  // Wakes the reader blocked in recv; it then drains and ends the connection.
  ::shutdown(fd_, SHUT_RDWR);
}

Transmission::Request* Transmission::AcquireRequest(size_t cost) {
  std::unique_lock lock(mu_);
  // A request bigger than the byte budget still runs, alone.
  while (inflight_ >= limits_.max_inflight_requests ||
         (inflight_ > 0 && inflight_bytes_ + cost > limits_.max_inflight_bytes)) {
    reader_waiting_ = true;
    room_.wait(lock);
  }
  reader_waiting_ = false;
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

void Transmission::ReleaseRequest(Request* req) {
  std::unique_lock lock(mu_);
  size_t capacity = req->buffers.data.capacity();
  retained_bytes_ += capacity - req->capacity_at_start;
  if (capacity > kAlwaysRetained && retained_bytes_ > limits_.retained_buffer_bytes) {
    retained_bytes_ -= capacity;
    req->buffers.data.Clear();
  }
  --inflight_;
  inflight_bytes_ -= req->cost;
  free_.push_back(req);
  bool wake = reader_waiting_;
  lock.unlock();
  if (wake) room_.notify_one();
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
