#include "nbd/busy_poll.h"

#include <poll.h>
#include <sched.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace skerry::nbd {

void BusyPollWindow::Record(uint64_t waited_ns) {
  if (max_ns_ == 0 || waited_ns <= window_ns_) return;
  if (waited_ns <= max_ns_) {
    window_ns_ = max_ns_;
    return;
  }
  window_ns_ /= 2;
  if (window_ns_ < max_ns_ / 16) window_ns_ = 0;
}

size_t SpinSlots::DefaultLimit() {
  // The CPUs this process may run on (taskset, cpusets), not the host's.
  cpu_set_t set;
  CPU_ZERO(&set);
  size_t cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? static_cast<size_t>(CPU_COUNT(&set))
                                                           : std::thread::hardware_concurrency();
  return cpus / 2;
}

bool SpinSlots::TryTake() {
  size_t n = taken_.load(std::memory_order_relaxed);
  while (n < limit_) {
    if (taken_.compare_exchange_weak(n, n + 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  }
  return false;
}

void SpinSlots::Give() { taken_.fetch_sub(1, std::memory_order_release); }

bool SpinUntilReadable(int fd, uint64_t ns) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  for (;;) {
    // poll, not a recv peek: a peek would take a pending socket error (a reset) that the
    // reader's own recv must see and report.
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, 0);
    if (n > 0) return true;  // data, the end of the stream, or an error for recv to report
    if (n < 0 && errno != EINTR) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // Any thread that is ready to run on this core (a worker, a VM's vCPU) goes first.
    sched_yield();
  }
}

}  // namespace skerry::nbd
