#include "store/dir/parallel_sync.h"

#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace skerry::dirstore {
namespace {

Status SyncError(int err, const SyncTarget& t) {
  return Status::FromErrno(err, (t.datasync ? "fdatasync " : "fsync ") + t.what);
}

Status SyncOne(const SyncTarget& t) {
  if (t.fd < 0) return Status::OK();
  int r;
  do {
    r = t.datasync ? fdatasync(t.fd) : fsync(t.fd);
  } while (r != 0 && errno == EINTR);
  return r == 0 ? Status::OK() : SyncError(errno, t);
}

// The error of the lowest-numbered failed target, from any thread.
class FirstError {
 public:
  void Record(size_t index, Status st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (index < index_) {
      index_ = index;
      status_ = std::move(st);
    }
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  size_t index_ = std::numeric_limits<size_t>::max();  // GUARDED_BY(mu_)
  Status status_;                                       // GUARDED_BY(mu_)
};

}  // namespace

ParallelSync::ParallelSync(unsigned parallelism, Engine engine)
    : parallelism_(std::max(parallelism, 1u)), engine_(engine), engine_used_(engine) {}

Status ParallelSync::Run(size_t count, const std::function<Result<SyncTarget>(size_t)>& open) {
  if (count == 0) return Status::OK();
  // Two (an object and its directory, the usual flush after one write) are done faster
  // one after the other: setting up a ring and waking workers costs more than waiting
  // for a second commit that, after the first, has little or nothing to write.
  if (count <= 2 || parallelism_ == 1) return RunSerial(count, open);
  if (engine_ == Engine::kUring && uring_works_.load(std::memory_order_relaxed)) {
    Status st;
    if (RunUring(count, open, &st)) {
      engine_used_.store(Engine::kUring);
      return st;
    }
  }
  engine_used_.store(Engine::kThreads);
  return RunThreads(count, open);
}

Status ParallelSync::RunSerial(size_t count, const std::function<Result<SyncTarget>(size_t)>& open) {
  for (size_t i = 0; i < count; i++) {
    SKERRY_ASSIGN_OR_RETURN(SyncTarget t, open(i));
    SKERRY_RETURN_IF_ERROR(SyncOne(t));
  }
  return Status::OK();
}

Status ParallelSync::RunThreads(size_t count, const std::function<Result<SyncTarget>(size_t)>& open) {
  std::atomic<size_t> next{0};
  FirstError error;
  auto work = [&] {
    while (!error.failed()) {
      size_t i = next.fetch_add(1);
      if (i >= count) return;
      Result<SyncTarget> t = open(i);
      Status st = t.ok() ? SyncOne(*t) : t.status();
      if (!st.ok()) error.Record(i, std::move(st));
    }
  };
  const size_t helpers = std::min<size_t>(parallelism_, count) - 1;
  std::vector<std::thread> threads;
  threads.reserve(helpers);
  for (size_t k = 0; k < helpers; k++) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads then; this one works too
    }
  }
  work();
  for (std::thread& t : threads) t.join();
  return error.failed() ? error.status() : Status::OK();
}

bool ParallelSync::RunUring(size_t count, const std::function<Result<SyncTarget>(size_t)>& open,
                            Status* result) {
  const unsigned depth = static_cast<unsigned>(std::min<size_t>(parallelism_, count));
  io_uring ring;
  if (io_uring_queue_init(depth, &ring, 0) < 0) {
    uring_works_.store(false);  // ENOSYS, EPERM (seccomp, io_uring_disabled): use threads
    return false;
  }
  // An fsync blocks, so each runs on an io-wq worker; by default a ring gets at most
  // min(entries, 4 x CPUs) of them, too few to have `depth` syncs in flight. Best effort.
  unsigned limits[2] = {depth, 0};  // bounded workers; 0 leaves the unbounded ones
  io_uring_register_iowq_max_workers(&ring, limits);

  std::vector<SyncTarget> slots(depth);
  std::vector<size_t> slot_target(depth);
  std::vector<unsigned> free_slots;
  for (unsigned s = depth; s > 0; s--) free_slots.push_back(s - 1);
  FirstError error;
  size_t next = 0;
  unsigned in_flight = 0;  // submitted or queued, not yet completed
  for (;;) {
    // Fill the free slots, handing each batch of 8 to the kernel at once so the first
    // syncs run while later files are still being opened.
    unsigned unsubmitted = 0;
    while (!error.failed() && next < count && !free_slots.empty()) {
      const size_t i = next++;
      Result<SyncTarget> t = open(i);
      if (!t.ok()) {
        error.Record(i, t.status());
        break;
      }
      if (t->fd < 0) continue;
      const unsigned s = free_slots.back();
      free_slots.pop_back();
      slots[s] = std::move(*t);
      slot_target[s] = i;
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);  // never null: at most `depth` queued
      io_uring_prep_fsync(sqe, slots[s].fd, slots[s].datasync ? IORING_FSYNC_DATASYNC : 0);
      sqe->flags |= IOSQE_ASYNC;  // it would block: straight to a worker
      io_uring_sqe_set_data64(sqe, s);
      in_flight++;
      if (++unsubmitted == 8) {
        io_uring_submit(&ring);
        unsubmitted = 0;
      }
    }
    if (in_flight == 0) break;
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) {
      // Cannot hand over or wait: give up. Syncs still running finish on their own (each
      // holds its file); the caller sees an error and treats the rest as unsynced.
      error.Record(count, Status::FromErrno(-r, "io_uring_enter (sync)"));
      break;
    }
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      const auto s = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
      if (cqe->res < 0) error.Record(slot_target[s], SyncError(-cqe->res, slots[s]));
      slots[s] = SyncTarget{};  // closes what we opened
      free_slots.push_back(s);
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
    in_flight -= seen;
  }
  io_uring_queue_exit(&ring);
  *result = error.failed() ? error.status() : Status::OK();
  return true;
}

}  // namespace skerry::dirstore
