// FanIn: one completion for several asynchronous operations.
//
// A read that spans blocks, or a reply made of several runs, starts one store or volume
// operation per piece; the caller wants one `done`, with the first error. The starter
// holds one count while it starts the pieces (so `done` cannot run before the last piece
// is started), adds one per piece, and finishes its own count at the end. Whoever
// finishes the last count runs `done` and frees the FanIn.
//
// Thread-safety: Add by the starter only; Finish from any thread, once per count.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <utility>

#include "skerry/done.h"
#include "skerry/status.h"

namespace skerry {

class FanIn {
 public:
  // A FanIn holding the starter's count.
  static FanIn* Start(Done done) { return new FanIn(std::move(done)); }

  void Add() { count_.fetch_add(1, std::memory_order_relaxed); }

  // Ends one count with `st`; the last one runs `done` with the first error, or OK.
  void Finish(Status st) {
    if (!st.ok()) {
      std::lock_guard lock(mu_);
      if (error_.ok()) error_ = std::move(st);
    }
    if (count_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    Done done = std::move(done_);
    Status result = std::move(error_);  // every other count is gone: no one else touches it
    delete this;
    done(std::move(result));
  }

 private:
  explicit FanIn(Done done) : done_(std::move(done)) {}

  Done done_;
  std::atomic<size_t> count_{1};
  std::mutex mu_;
  Status error_;  // GUARDED_BY(mu_): the first failure
};

}  // namespace skerry
