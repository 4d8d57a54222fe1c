// Transmission: the transmission phase of one connection.
//
// The calling thread is the connection's reader: it parses requests, validates
// each once (request.h), answers invalid ones itself, reads WRITE payloads straight
// into the request's buffer, and hands valid requests to the shared WorkerPool.
// Workers execute them (RequestExecutor) and send the replies, in whatever order
// they finish, through the connection's ReplyWriter.
//
// Handing a request to a worker costs two context switches, more than a 4 KiB
// read or write of a volume whose data is in memory. So the reader runs small
// READs and WRITEs itself while the volume answers them quickly, and dispatches
// everything else: flushes, FUA, big requests, and all requests while the volume is
// slow (e.g. cold reads from the store), so a blocking call never holds up the
// connection for long. InlinePolicy decides, from the service times of recent requests.
// On a volume whose store is natively asynchronous (RADOS), the reader starts every
// READ itself (a map lookup and the store's submission) and no thread waits for it: the
// store's completion sends the reply when few requests are in flight and the socket
// takes it without waiting, else hands it to a worker. That saves the hand-offs to and
// from a worker sleeping on the store for every read.
// One more case runs on the reader: a small READ or WRITE that is the only request
// of the connection (none in flight, none buffered behind it) while the volume
// answers within ~100 µs (InlinePolicy). A client at queue depth 1 waits for this reply
// before it sends anything, so the reader has nothing else to do; the hand-off would
// only add its two context switches to every request's latency.
// Replies of the requests it runs itself are batched (ReplyBatch) and sent
// together before the reader next waits for the client.
//
// Memory is bounded per connection: at most `max_inflight_requests` requests and
// `max_inflight_bytes` of payload (and BLOCK_STATUS extent lists) are in flight;
// past that the reader stops reading the socket until replies go out. Request
// objects and their buffers are reused.
//
// Thread-safety: Run is called once, by the connection's thread, and returns only
// after the workers are done with this object. To stop it from elsewhere, shut the
// socket's read side down (Connection::Stop).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nbd/buffered_reader.h"
#include "nbd/handshake.h"
#include "nbd/busy_poll.h"
#include "nbd/inline_policy.h"
#include "util/memory_budget.h"
#include "nbd/reply_writer.h"
#include "nbd/request.h"
#include "nbd/request_executor.h"
#include "nbd/transport.h"
#include "nbd/worker_pool.h"
#include "skerry/status.h"

namespace skerry::nbd {

struct TransmissionLimits {
  size_t max_inflight_requests = 256;
  size_t max_inflight_bytes = 64u << 20;  // > kMaxPayload: one maximal request always fits
  // Request buffers a connection keeps for reuse once idle.
  size_t retained_buffer_bytes = 16u << 20;
  // Bytes in flight across all of the server's connections (null: no bound but theirs).
  MemoryBudget* server_budget = nullptr;
  // How long a client may take to send a write's payload, or to take one reply, before
  // the connection is ended (StallWatch; enforced by the server). 0: forever.
  std::chrono::milliseconds stall_timeout{30'000};
  // Small requests run on the reader while they take less than this on average
  // (InlinePolicy). Tests raise it to stay clear of sanitizers' slowness.
  uint64_t inline_quick_ns = InlinePolicy::kDefaultQuickNs;
  // The longest a reader spins for its client's next request before sleeping
  // (BusyPollWindow); 0, or no slots: never spin.
  uint64_t busy_poll_ns = BusyPollWindow::kDefaultMaxNs;
  SpinSlots* spin_slots = nullptr;  // the server's; bounds spinning readers across connections
};

class Transmission {
 public:
  // `fd` is the socket under `transport`, shut down to wake the reader when a
  // reply cannot be sent.
  // `watch` (may be null) gets the payload and reply steps, with limits.stall_timeout.
  Transmission(Transport& transport, int fd, const NegotiatedExport& exp, WorkerPool& pool,
               const TransmissionLimits& limits, std::string peer, StallWatch* watch = nullptr);
  ~Transmission();

  struct Outcome {
    Status status;                      // OK: NBD_CMD_DISC or the client closed the socket
    uint64_t requests = 0;              // requests received
    uint64_t run_on_reader = 0;         // of those, run inline by the reader thread
    uint64_t spins = 0;                 // waits for a request that began with a spin
    uint64_t caught_by_spin = 0;        // of those, the ones whose request came during the spin
    bool disconnect_requested = false;  // NBD_CMD_DISC
  };
  // Serves requests until the client disconnects, a protocol violation or an I/O
  // error; returns once every dispatched request has been answered (or dropped,
  // when the connection broke), after a TLS close_notify.
  Outcome Run();

 private:
  struct Request {
    RequestHeader header;
    RequestBuffers buffers;
    uint64_t cost = 0;  // RequestMemoryCost, counted against max_inflight_bytes
    size_t capacity_at_start = 0;
  };

  // Waits until the reader holds a request header. With nothing in flight and a client
  // that has lately come back quickly, spins for it first (BusyPollWindow).
  Status WaitForRequest(BufferedReader& reader, Outcome* out);
  // Takes a valid request: reads its payload, then runs it inline or dispatches it.
  // Counts what it ran inline in `out`.
  Status Accept(BufferedReader& reader, const RequestHeader& h, Outcome* out);
  // Answers an invalid request with `error`, after consuming its payload.
  Status Reject(BufferedReader& reader, const RequestHeader& h, uint32_t error);
  // Sends the batched inline replies and releases their requests.
  void FlushBatch();
  // What ends the session: OK when the client left, else `st`.
  Status EndStatus(const Status& st) const;
  // Room for one more request of `cost` bytes, and a request object for it: the
  // Try form returns null instead of waiting.
  Request* TryAcquireRequest(uint64_t cost);
  Request* AcquireRequest(uint64_t cost);
  bool HasRoom(uint64_t cost) const;    // REQUIRES: mu_ held
  Request* TakeRequest(uint64_t cost);  // REQUIRES: mu_ held, HasRoom(cost)
  void ReleaseRequest(Request* req);
  // Runs a request and puts its reply in `sink`; the caller releases it after the
  // reply is sent.
  void Execute(Request* req, ReplySink& sink);
  // A READ of a volume that reads asynchronously: started here on the reader, its reply
  // sent by the store's completion (few in flight) or by a worker.
  void StartAsyncRead(Request* req);
  // A WRITE the volume takes without blocking: started here, answered like an async READ.
  // False when it must be run the usual way.
  bool TryStartAsyncWrite(Request* req);
  // The end of an asynchronous request, on the store's completion thread: `send` gives
  // the reply to the sink it is passed, sent from here if that cannot wait, else by a worker.
  void FinishAsync(Request* req, const Status& st, std::function<Status(ReplySink&)> send);
  // Requests of this connection in flight now (taken and not yet released).
  size_t InFlight();
  // Whether the reader should run `h` itself rather than hand it to a worker.
  bool ShouldRunInline(const RequestHeader& h, const BufferedReader& reader);
  void WaitIdle();
  // A reply could not be sent: stop the reader, the connection is finished.
  void Break();

  Transport& transport_;
  const int fd_;
  WorkerPool& pool_;
  const TransmissionLimits limits_;
  const std::string peer_;
  const ExportLimits export_limits_;
  StallWatch* const watch_;  // may be null
  ReplyWriter writer_;
  // Replies of requests the reader ran itself, and those requests (their buffers
  // hold the replies' data). Reader thread only.
  ReplyBatch batch_;
  std::vector<Request*> batched_;
  RequestExecutor executor_;

  // Whether the reader runs a small READ or WRITE itself. Fed by Execute.
  InlinePolicy inline_policy_;
  // How long the reader spins for the next request. Reader thread only.
  BusyPollWindow busy_poll_;

  std::mutex mu_;
  std::condition_variable room_;  // the reader waits here for in-flight room
  bool reader_waiting_ = false;
  size_t inflight_ = 0;
  size_t inflight_bytes_ = 0;
  size_t retained_bytes_ = 0;
  std::vector<std::unique_ptr<Request>> all_;
  std::vector<Request*> free_;
};

}  // namespace skerry::nbd
