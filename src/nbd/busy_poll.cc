#include "nbd/busy_poll.h"

#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
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

size_t SpinSlots::DefaultLimit() { return std::max<size_t>(1, std::thread::hardware_concurrency() / 2); }

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
    char byte;
    // A peek leaves the bytes for the reader's own recv (or TLS's).
    ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return true;  // data, or the end of the stream
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;  // recv will report it
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // Any thread that is ready to run on this core (a worker, a VM's vCPU) goes first.
    sched_yield();
  }
}

}  // namespace skerry::nbd
