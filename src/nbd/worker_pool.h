// WorkerPool: the threads that execute requests for every connection of a server.
//
// One pool is shared by all connections, so the number of threads doing volume
// I/O is bounded no matter how many clients connect. The queue is bounded too:
// Submit blocks when it is full, which stops the submitting connection's reader
// from taking more requests off its socket (back-pressure instead of memory). Post is
// for tasks that must not wait, such as finishing a request a store has completed.
//
// Thread-safety: Submit may be called from any thread; Stop from one.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace skerry::nbd {

class WorkerPool {
 public:
  WorkerPool(size_t threads, size_t queue_capacity);
  ~WorkerPool();  // Stop()

  // Queues `task`; blocks while the queue is full. REQUIRES: Stop not called.
  void Submit(std::function<void()> task);
  // Queues `task` without ever blocking, past the bound if need be: for completions
  // arriving on a store's thread, which must not wait (the tasks finish requests already
  // counted against their connection's in-flight limit, so they stay bounded).
  // REQUIRES: Stop not called.
  void Post(std::function<void()> task);
  // Runs every queued task, then joins the threads.
  void Stop();

 private:
  void WorkerLoop();

  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  // A ring of queue_capacity slots: no allocation per task.
  std::vector<std::function<void()>> ring_;
  std::deque<std::function<void()>> posted_;  // from Post; run before the ring
  size_t head_ = 0;
  size_t count_ = 0;
  size_t idle_ = 0;          // workers waiting on not_empty_
  size_t full_waiters_ = 0;  // submitters waiting on not_full_
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace skerry::nbd
