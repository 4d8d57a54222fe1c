// SimClock: simulated time (include/skerry/clock.h) for tests and the seeded crash runner.
// Time stands still until Advance moves it; Advance runs every task that falls due on the way,
// in due order, on the calling thread, with NowMs() reading each task's due time while it
// runs. So a run that advances the same amounts at the same points replays exactly, and a
// 60 s lease lapses in no real time.
//
// Thread-safety: all methods may be called from any thread; Advance calls must not overlap.
#pragma once

#include <atomic>

#include "skerry/clock.h"
#include "util/task_timer.h"

namespace skerry {

class SimClock final : public Clock {
 public:
  explicit SimClock(int64_t start_ms = 1'000'000) : now_(start_ms) {}

  int64_t NowMs() override { return now_.load(); }
  TaskId Schedule(int64_t delay_ms, std::function<void()> task) override;
  bool Cancel(TaskId id) override { return timer_.Cancel(id); }

  // Moves time forward by `ms`, running the tasks that fall due (and those they schedule
  // within the span). Returns how many ran.
  int Advance(int64_t ms);

 private:
  std::atomic<int64_t> now_;
  TaskTimer timer_;
};

}  // namespace skerry
