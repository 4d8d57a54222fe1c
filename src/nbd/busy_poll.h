// Busy polling: a reader that has answered everything its client sent spins for a
// moment before it sleeps in recv, when the client's next request has lately come
// within that moment (docs/nbd.md, "Busy polling").
//
// Why: at queue depth 1 the client sends its next request a few microseconds after our
// reply reaches it. A reader asleep in recv must then be woken, and on a VM whose idle
// vCPUs halt (no guest halt-polling) that wake-up costs more than the request itself.
// Spinning answers such a client much sooner at about the same CPU time per request,
// since the wake-up cost that CPU time too (docs/benchmarks.md has the figures).
//
// Spinning is worth it only while the client comes back quickly, so the spin window
// adapts, as the kernel's haltpoll governor does:
//  - a wait the window covered leaves it as it is;
//  - a wait longer than the window but within `max_ns` opens it to `max_ns` (a spin
//    that long would have caught it);
//  - a wait longer than `max_ns` halves it, and below max_ns / 16 it closes: an idle
//    or slow client costs a few spins, then none.
// So a connection spins at most `max_ns` per request and, once its client slows down,
// not at all. SpinSlots bounds how many readers of the server spin at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace skerry::nbd {

class BusyPollWindow {
 public:
  static constexpr uint64_t kDefaultMaxNs = 50'000;

  // max_ns 0: never spin.
  explicit BusyPollWindow(uint64_t max_ns) : max_ns_(max_ns) {}

  bool enabled() const { return max_ns_ > 0; }
  // How long to spin before the next wait sleeps; 0: do not spin.
  uint64_t window_ns() const { return window_ns_; }
  // A wait for the client that lasted `waited_ns` (spin included) has ended.
  void Record(uint64_t waited_ns);

 private:
  const uint64_t max_ns_;
  uint64_t window_ns_ = 0;
};

// How many threads may spin at once across the server: spinners take cores that other
// readers, workers and the VMs themselves could use.
class SpinSlots {
 public:
  explicit SpinSlots(size_t limit) : limit_(limit) {}
  // Half the CPUs this process may run on: 0 on one CPU, where a spinning reader could
  // only delay the client that shares its core.
  static size_t DefaultLimit();
  size_t limit() const { return limit_; }

  // One slot, or false when all are taken.
  bool TryTake();
  void Give();

 private:
  const size_t limit_;
  std::atomic<size_t> taken_{0};
};

// Spins until `fd` has something to read (data, end of stream or an error) or `ns`
// passed. True if it has.
bool SpinUntilReadable(int fd, uint64_t ns);

}  // namespace skerry::nbd
