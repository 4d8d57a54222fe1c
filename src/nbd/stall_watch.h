// StallWatch: deadlines for the steps of one connection that wait on its client.
//
// Three steps can wait on a client for as long as it likes: the handshake; the payload
// of a WRITE, whose memory was taken from the server's budget before it was read; and
// sending a reply, which holds the connection's send lock (workers with other replies for
// it queue behind that lock, and every worker can end up there). Idle clients are fine,
// and TLS keeps state of its own around a send, so socket timeouts are not the tool. The
// thread running a step marks it here; the server's accept thread looks several times a
// second (Server::CheckStalls) and shuts the socket down under a step past its deadline,
// which wakes that step with an error and ends the connection.
//
// Thread-safety: Start and Done of one step come from one thread at a time (the steps are
// the connection thread's, the reader's, and the send lock holder's); Overdue from any.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "util/steady_ms.h"

namespace skerry::nbd {

class StallWatch {
 public:
  enum Step { kHandshake = 0, kPayload = 1, kReply = 2, kSteps = 3 };

  // `step` must end within `timeout` from now. A zero timeout: no deadline.
  void Start(Step step, std::chrono::milliseconds timeout) {
    if (timeout.count() > 0) deadline_ms_[step].store(SteadyMs() + timeout.count(), std::memory_order_relaxed);
  }
  void Done(Step step) { deadline_ms_[step].store(0, std::memory_order_relaxed); }
  // A step past its deadline at `now_ms`, or kSteps when none is.
  Step Overdue(int64_t now_ms) const {
    for (int s = 0; s < kSteps; ++s) {
      int64_t d = deadline_ms_[s].load(std::memory_order_relaxed);
      if (d != 0 && now_ms > d) return static_cast<Step>(s);
    }
    return kSteps;
  }
  static const char* StepName(Step step) {
    switch (step) {
      case kHandshake: return "did not finish the handshake in time";
      case kPayload: return "stopped sending in the middle of a write's payload";
      case kReply: return "stopped taking a reply";
      default: return "stalled";
    }
  }

 private:
  std::array<std::atomic<int64_t>, kSteps> deadline_ms_{};  // steady-clock ms; 0: not running
};

// Marks a step for the length of a scope (nothing when `watch` is null).
class StallScope {
 public:
  StallScope(StallWatch* watch, StallWatch::Step step, std::chrono::milliseconds timeout)
      : watch_(watch), step_(step) {
    if (watch_) watch_->Start(step_, timeout);
  }
  ~StallScope() {
    if (watch_) watch_->Done(step_);
  }
  StallScope(const StallScope&) = delete;
  StallScope& operator=(const StallScope&) = delete;

 private:
  StallWatch* watch_;
  StallWatch::Step step_;
};

}  // namespace skerry::nbd
