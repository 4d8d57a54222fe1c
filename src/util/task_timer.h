// TaskTimer: the bookkeeping both clocks share (include/skerry/clock.h): tasks waiting by due
// time, the one running now, and the Cancel that waits for it. A clock takes the next due task
// with TakeDue, runs it outside the lock, and calls Finished.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "skerry/clock.h"

namespace skerry {

class TaskTimer {
 public:
  struct Due {
    Clock::TaskId id;
    int64_t at_ms;
    std::function<void()> task;
  };

  Clock::TaskId Add(int64_t at_ms, std::function<void()> task);
  bool Cancel(Clock::TaskId id);
  // The earliest task due at or before `now_ms`, marked running (ties: in scheduling order).
  std::optional<Due> TakeDue(int64_t now_ms);
  // The running task ended.
  void Finished();
  // When the earliest task is due; nullopt when none waits.
  std::optional<int64_t> NextDueMs() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // (due, id) orders equal due times by scheduling order: ids grow.
  std::map<std::pair<int64_t, Clock::TaskId>, std::function<void()>> waiting_;
  std::map<Clock::TaskId, int64_t> due_of_;
  Clock::TaskId next_id_ = 1;
  Clock::TaskId running_ = 0;
  std::thread::id running_on_;
};

}  // namespace skerry
