#include "util/sim_clock.h"

#include <algorithm>

namespace skerry {

Clock::TaskId SimClock::Schedule(int64_t delay_ms, std::function<void()> task) {
  return timer_.Add(now_.load() + std::max<int64_t>(delay_ms, 0), std::move(task));
}

int SimClock::Advance(int64_t ms) {
  const int64_t until = now_.load() + std::max<int64_t>(ms, 0);
  int ran = 0;
  while (auto due = timer_.TakeDue(until)) {
    now_.store(std::max(now_.load(), due->at_ms));
    due->task();
    timer_.Finished();
    ran++;
  }
  now_.store(until);
  return ran;
}

}  // namespace skerry
