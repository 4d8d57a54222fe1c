#include "volume/lease_keeper.h"

#include <fmt/format.h>

namespace skerry::volume {

LeaseKeeper::LeaseKeeper(ObjectStore& store, std::string lock_name, std::string owner, int64_t lease_ms,
                         std::shared_ptr<Clock> clock)
    : store_(store),
      lock_name_(std::move(lock_name)),
      owner_(std::move(owner)),
      lease_ms_(lease_ms),
      clock_(clock ? std::move(clock) : Clock::Real()) {}

void LeaseKeeper::Start() {
  // The lock was taken just before: a tenth off for the time that took.
  valid_until_ms_.store(clock_->NowMs() + lease_ms_ * 9 / 10);
  MutexLock lock(&mu_);
  next_ = clock_->Schedule(lease_ms_ / 3, [this] { Renew(); });
}

void LeaseKeeper::Renew() {
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
  }
  const int64_t sent = clock_->NowMs();
  Status st = store_.Lock(lock_name_, owner_, lease_ms_);
  if (st.ok()) valid_until_ms_.store(sent + lease_ms_);
  // Someone took it over: stop writing, and stop renewing, or a lock its new owner released
  // would be taken back by a holder that will never write again, keeping everyone else out.
  if (st.code() == Code::kBusy) {
    fenced_.store(true);
    return;
  }
  // Other errors: the lease runs out unless a later renewal gets through.
  MutexLock lock(&mu_);
  if (!stopped_) next_ = clock_->Schedule(lease_ms_ / 3, [this] { Renew(); });
}

void LeaseKeeper::Stop() {
  Clock::TaskId next;
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    next = next_;
  }
  // A renewal running now sees stopped_ and schedules none; Cancel waits for it to end.
  if (next != 0) clock_->Cancel(next);
}

Status LeaseKeeper::Check(const std::string& what) const {
  if (fenced_.load()) return Status::IOError(fmt::format("{}: lost its write lock to another owner; refusing writes", what));
  if (clock_->NowMs() >= valid_until_ms_.load())
    return Status::IOError(fmt::format("{}: write lock lease could not be renewed in time; refusing writes", what));
  return Status::OK();
}

}  // namespace skerry::volume
