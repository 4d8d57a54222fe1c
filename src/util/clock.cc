// The real clock (include/skerry/clock.h): the steady clock, and one timer thread that runs
// scheduled tasks in due order. The thread starts with the first Schedule and lives as long
// as the clock (the process's, for Clock::Real()).
#include "skerry/clock.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "util/steady_ms.h"
#include "util/task_timer.h"

namespace skerry {
namespace {

class RealClock final : public Clock {
 public:
  ~RealClock() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  int64_t NowMs() override { return SteadyMs(); }

  TaskId Schedule(int64_t delay_ms, std::function<void()> task) override {
    TaskId id = timer_.Add(SteadyMs() + std::max<int64_t>(delay_ms, 0), std::move(task));
    {
      std::lock_guard lock(mu_);
      if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    }
    cv_.notify_all();  // the new task may be due before the one the thread sleeps for
    return id;
  }

  bool Cancel(TaskId id) override { return timer_.Cancel(id); }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (auto due = timer_.TakeDue(SteadyMs())) {
        lock.unlock();
        due->task();
        timer_.Finished();
        lock.lock();
        continue;
      }
      // Scheduling takes mu_ before it notifies, so no task added after this look is missed.
      std::optional<int64_t> next = timer_.NextDueMs();
      if (next) cv_.wait_for(lock, std::chrono::milliseconds(*next - SteadyMs()));
      else cv_.wait(lock);
    }
  }

  TaskTimer timer_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace

std::shared_ptr<Clock> Clock::Real() {
  static const std::shared_ptr<Clock> real = std::make_shared<RealClock>();
  return real;
}

}  // namespace skerry
