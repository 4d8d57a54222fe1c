#include "store/fault/delay_store.h"

#include <chrono>
#include <thread>

namespace skerry {

Result<DelayOptions> ParseDelayOptions(std::string_view spec) {
  DelayOptions o;
  auto bad = [&](const Status& st) { return Status::InvalidArgument("delay '" + std::string(spec) + "': " + st.message()); };
  SKERRY_ASSIGN_OR_RETURN(auto opts, SplitOptions(spec, "delay '" + std::string(spec) + "'"));
  bool have_ms = false;
  for (auto& [key, value] : opts) {
    if (key == "ms" || key == "jitter" || key == "seed" || key == "async") {
      auto v = ParseUnsignedOption(key, value);
      if (!v.ok()) return bad(v.status());
      (key == "ms" ? o.ms : key == "jitter" ? o.jitter : key == "seed" ? o.seed : o.async) = *v;
      have_ms |= key == "ms";
    } else if (key == "ops") {
      auto ops = ParseStoreOps(value);
      if (!ops.ok()) return bad(ops.status());
      o.ops = *ops;
    } else {
      return bad(Status::InvalidArgument("unknown key '" + key + "' (use ms, jitter, ops, seed, async)"));
    }
  }
  if (!have_ms) return bad(Status::InvalidArgument("needs ms=N (milliseconds per call)"));
  if (o.async > 64) return bad(Status::InvalidArgument("async=N allows at most 64 threads"));
  return o;
}

DelayStore::DelayStore(std::shared_ptr<ObjectStore> inner, DelayOptions options, std::string spec)
    : ForwardingStore(std::move(inner)), options_(options), spec_(std::move(spec)), rng_(options.seed) {
  for (uint64_t i = 0; i < options_.async; i++) threads_.emplace_back([this] { AsyncLoop(); });
}

DelayStore::~DelayStore() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

StoreCapabilities DelayStore::capabilities() const {
  StoreCapabilities caps = ForwardingStore::capabilities();
  caps.native_async = options_.async > 0;
  return caps;
}

void DelayStore::Run(StoreOp op, std::function<void()> call) {
  if (options_.async == 0) {
    Pause(op);
    return call();
  }
  {
    std::lock_guard lock(queue_mu_);
    queue_.push_back([this, op, call = std::move(call)] {
      Pause(op);
      call();
    });
  }
  queue_cv_.notify_one();
}

void DelayStore::AsyncLoop() {
  std::unique_lock lock(queue_mu_);
  for (;;) {
    queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and every queued call has run
    std::function<void()> call = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    call();
    lock.lock();
  }
}

std::string DelayStore::uri() const { return "delay:" + spec_ + "+" + ForwardingStore::uri(); }

void DelayStore::Pause(StoreOp op) {
  if (!(options_.ops & Bit(op))) return;
  uint64_t ms = options_.ms;
  if (options_.jitter > 0) {
    std::lock_guard lock(mu_);
    ms += rng_() % (options_.jitter + 1);
  }
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// Data path: names are copied into the call, which may run after the caller's strings are gone.
void DelayStore::Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) {
  Run(StoreOp::kRead, [this, name, offset, out, done = std::move(done)]() mutable {
    ForwardingStore::Read(name, offset, out, std::move(done));
  });
}
void DelayStore::Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh, Done done) {
  Run(StoreOp::kWrite, [this, name, offset, data, fresh, done = std::move(done)]() mutable {
    ForwardingStore::Write(name, offset, data, fresh, std::move(done));
  });
}
void DelayStore::Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) {
  Run(StoreOp::kZero, [this, name, offset, length, done = std::move(done)]() mutable {
    ForwardingStore::Zero(name, offset, length, std::move(done));
  });
}
void DelayStore::Copy(const std::string& src, const std::string& dst, Done done) {
  Run(StoreOp::kCopy, [this, src, dst, done = std::move(done)]() mutable {
    ForwardingStore::Copy(src, dst, std::move(done));
  });
}
void DelayStore::Sync(std::vector<std::string> names, Done done) {
  Run(StoreOp::kSync, [this, names = std::move(names), done = std::move(done)]() mutable {
    ForwardingStore::Sync(std::move(names), std::move(done));
  });
}
Result<std::string> DelayStore::Get(const std::string& name) {
  Pause(StoreOp::kGet);
  return ForwardingStore::Get(name);
}
Status DelayStore::Put(const std::string& name, std::string_view data) {
  Pause(StoreOp::kPut);
  return ForwardingStore::Put(name, data);
}
Status DelayStore::Create(const std::string& name, std::string_view data) {
  Pause(StoreOp::kCreate);
  return ForwardingStore::Create(name, data);
}
Status DelayStore::CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) {
  Pause(StoreOp::kCas);
  return ForwardingStore::CompareAndSwap(name, expected, desired);
}
Status DelayStore::Truncate(const std::string& name, uint64_t size) {
  Pause(StoreOp::kTruncate);
  return ForwardingStore::Truncate(name, size);
}
Result<ObjectInfo> DelayStore::Stat(const std::string& name) {
  Pause(StoreOp::kStat);
  return ForwardingStore::Stat(name);
}
Status DelayStore::Delete(const std::string& name) {
  Pause(StoreOp::kDelete);
  return ForwardingStore::Delete(name);
}
Result<std::vector<std::string>> DelayStore::List(std::string_view prefix) {
  Pause(StoreOp::kList);
  return ForwardingStore::List(prefix);
}
Status DelayStore::Lock(const std::string& name, const std::string& owner, int64_t lease_ms) {
  Pause(StoreOp::kLock);
  return ForwardingStore::Lock(name, owner, lease_ms);
}
Status DelayStore::Unlock(const std::string& name, const std::string& owner) {
  Pause(StoreOp::kLock);
  return ForwardingStore::Unlock(name, owner);
}
Result<LockInfo> DelayStore::GetLock(const std::string& name) {
  Pause(StoreOp::kLock);
  return ForwardingStore::GetLock(name);
}
Status DelayStore::BreakLock(const std::string& name, const std::string& owner, bool fence) {
  Pause(StoreOp::kLock);
  return ForwardingStore::BreakLock(name, owner, fence);
}

}  // namespace skerry
