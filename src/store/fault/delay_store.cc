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
    if (key == "ms" || key == "jitter" || key == "seed") {
      auto v = ParseUnsignedOption(key, value);
      if (!v.ok()) return bad(v.status());
      (key == "ms" ? o.ms : key == "jitter" ? o.jitter : o.seed) = *v;
      have_ms |= key == "ms";
    } else if (key == "ops") {
      auto ops = ParseStoreOps(value);
      if (!ops.ok()) return bad(ops.status());
      o.ops = *ops;
    } else {
      return bad(Status::InvalidArgument("unknown key '" + key + "' (use ms, jitter, ops, seed)"));
    }
  }
  if (!have_ms) return bad(Status::InvalidArgument("needs ms=N (milliseconds per call)"));
  return o;
}

DelayStore::DelayStore(std::shared_ptr<ObjectStore> inner, DelayOptions options, std::string spec)
    : ForwardingStore(std::move(inner)), options_(options), spec_(std::move(spec)), rng_(options.seed) {}

StoreCapabilities DelayStore::capabilities() const {
  StoreCapabilities caps = ForwardingStore::capabilities();
  caps.native_async = false;
  return caps;
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

void DelayStore::Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) {
  Pause(StoreOp::kRead);
  ForwardingStore::Read(name, offset, out, std::move(done));
}
void DelayStore::Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh, Done done) {
  Pause(StoreOp::kWrite);
  ForwardingStore::Write(name, offset, data, fresh, std::move(done));
}
void DelayStore::Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) {
  Pause(StoreOp::kZero);
  ForwardingStore::Zero(name, offset, length, std::move(done));
}
void DelayStore::Copy(const std::string& src, const std::string& dst, Done done) {
  Pause(StoreOp::kCopy);
  ForwardingStore::Copy(src, dst, std::move(done));
}
void DelayStore::Sync(std::vector<std::string> names, Done done) {
  Pause(StoreOp::kSync);
  ForwardingStore::Sync(std::move(names), std::move(done));
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

}  // namespace skerry
