#include "volume/gc_guard.h"

#include <fmt/format.h>
#include <sys/random.h>

#include <chrono>
#include <thread>

#include "util/sha256.h"
#include "volume/metadata.h"

namespace skerry::volume {
namespace {

Result<std::string> RandomToken() {
  uint8_t raw[12];
  if (getrandom(raw, sizeof(raw), 0) != static_cast<ssize_t>(sizeof(raw))) return Status::FromErrno(errno, "getrandom");
  return ToHex(raw, sizeof(raw));
}

// The holder of lock `name` if its lease is live; nullopt if it is free or lapsed.
Result<std::optional<LockInfo>> LiveHolder(ObjectStore& store, const std::string& name) {
  Result<LockInfo> info = store.GetLock(name);
  if (info.status().IsNotFound()) return std::optional<LockInfo>();
  if (!info.ok()) return info.status();
  if (info->expires_unix_ms <= NowUnixMs()) return std::optional<LockInfo>();
  return std::optional<LockInfo>(*info);
}

}  // namespace

Result<std::vector<std::string>> LiveGcHolds(ObjectStore& store) {
  SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> names, store.List(kGcHoldPrefix));
  std::vector<std::string> owners;
  for (const std::string& n : names) {
    SKERRY_ASSIGN_OR_RETURN(std::optional<LockInfo> h, LiveHolder(store, n));
    if (h) owners.push_back(h->owner);
    else (void)store.Delete(n);  // a released or lapsed hold: tidy (a live one is never empty)
  }
  return owners;
}

GcHold::GcHold(ObjectStore& store, std::string name, std::string owner, int64_t lease_ms, std::shared_ptr<Clock> clock)
    : store_(store), name_(name), owner_(owner), lease_(store, std::move(name), std::move(owner), lease_ms, std::move(clock)) {}

Result<std::unique_ptr<GcHold>> GcHold::Acquire(ObjectStore& store, const std::string& owner, int64_t lease_ms,
                                                std::shared_ptr<Clock> clock, int64_t wait_ms) {
  SKERRY_ASSIGN_OR_RETURN(std::string token, RandomToken());
  const std::string name = kGcHoldPrefix + token;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    // Ours first, then theirs (see the header).
    SKERRY_RETURN_IF_ERROR(store.Lock(name, owner, lease_ms));
    std::unique_ptr<GcHold> hold(new GcHold(store, name, owner, lease_ms, clock));
    hold->lease_.Start();
    SKERRY_ASSIGN_OR_RETURN(std::optional<LockInfo> gc, LiveHolder(store, kGcRunningLock));
    if (!gc) return hold;
    // A collection runs: it may be deleting what we would find stored. Step back and wait.
    SKERRY_RETURN_IF_ERROR(hold->Release());
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::Busy(fmt::format("garbage collection by '{}' is running; deduplication waits for it", gc->owner));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

GcHold::~GcHold() { (void)Release(); }

Status GcHold::Release() {
  if (released_) return Status::OK();
  released_ = true;
  lease_.Stop();
  Status st = store_.Unlock(name_, owner_);
  if (st.ok() || st.IsNotFound()) {
    (void)store_.Delete(name_);
    return Status::OK();
  }
  return st;
}

GcRunning::GcRunning(ObjectStore& store, std::string owner, int64_t lease_ms, std::shared_ptr<Clock> clock)
    : store_(store), owner_(owner), lease_(store, kGcRunningLock, std::move(owner), lease_ms, std::move(clock)) {}

Result<std::unique_ptr<GcRunning>> GcRunning::Start(ObjectStore& store, const std::string& owner, int64_t lease_ms,
                                                    std::shared_ptr<Clock> clock) {
  Status st = store.Lock(kGcRunningLock, owner, lease_ms);
  if (st.code() == Code::kBusy) return Status::Busy(fmt::format("another garbage collection runs ({})", st.message()));
  SKERRY_RETURN_IF_ERROR(st);
  std::unique_ptr<GcRunning> run(new GcRunning(store, owner, lease_ms, std::move(clock)));
  run->lease_.Start();
  // Ours first, then theirs (see the header).
  SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> holds, LiveGcHolds(store));
  if (!holds.empty()) {
    (void)run->Finish();
    return Status::Busy(fmt::format("{} deduplicating writer(s) hold off garbage collection (first: '{}'); try again "
                                    "when they are done",
                                    holds.size(), holds.front()));
  }
  return run;
}

GcRunning::~GcRunning() { (void)Finish(); }

Status GcRunning::Finish() {
  if (finished_) return Status::OK();
  finished_ = true;
  lease_.Stop();
  Status st = store_.Unlock(kGcRunningLock, owner_);
  return st.IsNotFound() ? Status::OK() : st;
}

}  // namespace skerry::volume
