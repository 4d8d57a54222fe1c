// InlinePolicy: whether a connection's reader thread runs a small READ or WRITE itself
// or hands it to a worker (docs/nbd.md, "Inline fast path").
//
// A hand-off costs two context switches, more than a 4 KiB request to a volume whose
// data is in memory; but a request that blocks holds up every later one of its
// connection while the reader runs it. So the reader runs requests while they are
// quick on average, judged from a moving mean of recent service times: the volume's
// work up to the first byte of the reply, without the send (ServiceClock in
// transmission.cc; a worker's send waits for the connection's send lock and for socket
// room, which made a connection that had gone to workers look slow and stay there).
//
//  - Under `quick_ns` (default 20 µs, about a hand-off): every such request runs on
//    the reader.
//  - Under 5 × quick_ns: only a request alone on its connection (nothing else in flight
//    or read ahead) does; its client waits for the reply before it sends anything else.
//  - Above: none (RADOS, a cold disk).
//
// A mean of whole times, not capped: a volume that blocks for milliseconds now and then
// must leave the reader, since each such block holds up the whole connection. (A run
// that lost its core for a time slice looks the same, and sends the next few dozen
// requests to workers; that was measured as no loss, bench/results/2026-11-nbd-cold-pages.md.)
//
// Thread-safety: Decide on the reader thread; Record on any thread, concurrently.
#pragma once

#include <atomic>
#include <cstdint>

namespace skerry::nbd {

class InlinePolicy {
 public:
  static constexpr uint64_t kDefaultQuickNs = 20'000;

  explicit InlinePolicy(uint64_t quick_ns = kDefaultQuickNs)
      : quick_ns_(quick_ns), alone_max_ns_(5 * quick_ns) {}

  enum class Decision {
    kReader,         // run it on the reader
    kWorker,         // hand it to a worker
    kReaderIfAlone,  // on the reader if it is alone on its connection, else a worker
  };

  // For a READ or WRITE small enough to run inline (the caller checks size and flags).
  Decision Decide() const;
  // The service time of a request that could have run inline, wherever it ran.
  void Record(uint64_t service_ns);

  uint64_t mean_ns() const { return mean_ns_.load(std::memory_order_relaxed); }

 private:
  const uint64_t quick_ns_;
  const uint64_t alone_max_ns_;
  // A moving average (weight 1/8), updated without a lock: approximate is enough.
  std::atomic<uint64_t> mean_ns_{0};
};

}  // namespace skerry::nbd
