#include "util/task_timer.h"

namespace skerry {

Clock::TaskId TaskTimer::Add(int64_t at_ms, std::function<void()> task) {
  std::lock_guard lock(mu_);
  Clock::TaskId id = next_id_++;
  waiting_.emplace(std::make_pair(at_ms, id), std::move(task));
  due_of_.emplace(id, at_ms);
  return id;
}

bool TaskTimer::Cancel(Clock::TaskId id) {
  std::unique_lock lock(mu_);
  if (auto it = due_of_.find(id); it != due_of_.end()) {
    waiting_.erase({it->second, id});
    due_of_.erase(it);
    return true;
  }
  // Running now on another thread: wait until it ended, so the caller may free what it uses.
  cv_.wait(lock, [&] { return running_ != id || running_on_ == std::this_thread::get_id(); });
  return false;
}

std::optional<TaskTimer::Due> TaskTimer::TakeDue(int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (waiting_.empty() || waiting_.begin()->first.first > now_ms) return std::nullopt;
  auto it = waiting_.begin();
  Due due{it->first.second, it->first.first, std::move(it->second)};
  waiting_.erase(it);
  due_of_.erase(due.id);
  running_ = due.id;
  running_on_ = std::this_thread::get_id();
  return due;
}

void TaskTimer::Finished() {
  {
    std::lock_guard lock(mu_);
    running_ = 0;
    running_on_ = {};
  }
  cv_.notify_all();
}

std::optional<int64_t> TaskTimer::NextDueMs() const {
  std::lock_guard lock(mu_);
  if (waiting_.empty()) return std::nullopt;
  return waiting_.begin()->first.first;
}

}  // namespace skerry
