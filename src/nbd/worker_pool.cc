#include "nbd/worker_pool.h"

namespace skerry::nbd {

WorkerPool::WorkerPool(size_t threads, size_t queue_capacity)
    : ring_(queue_capacity > 0 ? queue_capacity : 1) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Submit(std::function<void()> task) {
  std::unique_lock lock(mu_);
  while (count_ == ring_.size()) {
    ++full_waiters_;
    not_full_.wait(lock);
    --full_waiters_;
  }
  ring_[(head_ + count_) % ring_.size()] = std::move(task);
  ++count_;
  // Waking costs a futex call and a context switch: only when someone sleeps.
  bool wake = idle_ > 0;
  lock.unlock();
  if (wake) not_empty_.notify_one();
}

void WorkerPool::Post(std::function<void()> task) {
  // Notify before unlocking: the poster (a store's thread) is not one whose end the server
  // waits for, and once the task is queued a worker may finish the last request, letting
  // the server stop and destroy this pool, condition variable included.
  std::lock_guard lock(mu_);
  posted_.push_back(std::move(task));
  if (idle_ > 0) not_empty_.notify_one();
}

void WorkerPool::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  not_empty_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WorkerPool::WorkerLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    while (count_ == 0 && posted_.empty() && !stopping_) {
      ++idle_;
      not_empty_.wait(lock);
      --idle_;
    }
    std::function<void()> task;
    bool wake_submitter = false;
    if (!posted_.empty()) {  // finishing requests first frees their room
      task = std::move(posted_.front());
      posted_.pop_front();
    } else if (count_ > 0) {
      task = std::move(ring_[head_]);
      head_ = (head_ + 1) % ring_.size();
      --count_;
      wake_submitter = full_waiters_ > 0;
    } else {
      return;  // stopping and drained
    }
    lock.unlock();
    if (wake_submitter) not_full_.notify_one();
    task();
    task = nullptr;  // drop captures before taking the lock again
    lock.lock();
  }
}

}  // namespace skerry::nbd
