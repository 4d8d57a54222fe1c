// Clock: time as an interface. A monotonic "now" and tasks scheduled for later, so that what
// depends on time (a volume's write-lock lease: renewal, lapse, fencing) runs on the real
// clock in the daemon and in simulated time in tests and the seeded crash runner, where a
// seed must replay the same run and a 60 s lease must not take 60 s.
//
// The real clock (Clock::Real()) runs scheduled tasks on one timer thread of its own, one at a
// time: a task must be short and must not wait for another task of the same clock. A
// simulated clock (src/util/sim_clock.h) runs them on the thread that advances it.
//
// Thread-safety: every method may be called from any thread, including from a task.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace skerry {

class Clock {
 public:
  using TaskId = uint64_t;

  virtual ~Clock() = default;

  // Milliseconds on a monotonic clock: for deadlines and elapsed times, never for display.
  virtual int64_t NowMs() = 0;
  // Runs `task` once, `delay_ms` from now (at once when <= 0). The id is never 0.
  virtual TaskId Schedule(int64_t delay_ms, std::function<void()> task) = 0;
  // Whether the task was taken off before it ran. When Cancel returns, the task is neither
  // waiting nor running (unless Cancel is called from that very task, which then goes on).
  virtual bool Cancel(TaskId id) = 0;

  // The process's real (steady) clock, shared by everything that was given no other.
  static std::shared_ptr<Clock> Real();
};

}  // namespace skerry
