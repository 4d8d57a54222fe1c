#include "store/fault/fault_store.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace skerry {
namespace {

constexpr uint64_t kDefaultTimeoutMs = 1000;

Status RuleError(std::string_view rule, const Status& st) {
  return Status::InvalidArgument("fault rule '" + std::string(rule) + "': " + st.message());
}

Result<FaultRule> ParseRule(std::string_view text) {
  FaultRule rule;
  auto opts = SplitOptions(text, "fault rule '" + std::string(text) + "'");
  if (!opts.ok()) return opts.status();
  bool have_error = false, have_ms = false;
  for (auto& [key, value] : *opts) {
    if (key == "error") {
      if (value == "eio") rule.error = FaultError::kEIO;
      else if (value == "enospc") rule.error = FaultError::kENOSPC;
      else if (value == "etimedout") rule.error = FaultError::kETIMEDOUT;
      else return RuleError(text, Status::InvalidArgument("unknown error '" + value + "' (use eio, enospc or etimedout)"));
      have_error = true;
    } else if (key == "ops") {
      auto ops = ParseStoreOps(value);
      if (!ops.ok()) return RuleError(text, ops.status());
      rule.ops = *ops;
    } else if (key == "rate") {
      auto rate = ParseRateOption(key, value);
      if (!rate.ok()) return RuleError(text, rate.status());
      rule.rate = *rate;
    } else if (key == "trigger") {
      if (value.empty()) return RuleError(text, Status::InvalidArgument("trigger= needs a file path"));
      rule.trigger = value;
    } else if (key == "seed") {
      auto seed = ParseUnsignedOption(key, value);
      if (!seed.ok()) return RuleError(text, seed.status());
      rule.seed = *seed;
    } else if (key == "prefix") {
      if (value.empty()) return RuleError(text, Status::InvalidArgument("prefix= needs an object name prefix"));
      rule.prefix = value;
    } else if (key == "ms") {
      auto ms = ParseUnsignedOption(key, value);
      if (!ms.ok()) return RuleError(text, ms.status());
      rule.delay_ms = *ms;
      have_ms = true;
    } else {
      return RuleError(text, Status::InvalidArgument("unknown key '" + key + "' (use error, ops, rate, trigger, seed, ms, prefix)"));
    }
  }
  if (!have_error) return RuleError(text, Status::InvalidArgument("needs error=eio|enospc|etimedout"));
  if (!rule.rate && rule.trigger.empty())
    return RuleError(text, Status::InvalidArgument("needs rate=P or trigger=PATH (rate=1 fails every call)"));
  if (!have_ms && rule.error == FaultError::kETIMEDOUT) rule.delay_ms = kDefaultTimeoutMs;
  return rule;
}

Status MakeError(FaultError error, std::string_view what) {
  std::string msg = "injected fault: " + std::string(what);
  switch (error) {
    case FaultError::kENOSPC: return Status::NoSpace(msg + ": no space left on device");
    case FaultError::kETIMEDOUT: return Status::TimedOut(msg + ": timed out");
    case FaultError::kEIO: break;
  }
  return Status::IOError(msg + ": input/output error");
}

std::string What(StoreOp op, std::span<const std::string_view> names) {
  std::string out = StoreOpName(op);
  for (size_t i = 0; i < names.size() && i < 2; i++) out += (i ? ", '" : " '") + std::string(names[i]) + "'";
  if (names.size() > 2) out += " and " + std::to_string(names.size() - 2) + " more";
  return out;
}

}  // namespace

Result<std::vector<FaultRule>> ParseFaultRules(std::string_view spec) {
  std::vector<FaultRule> rules;
  if (spec.empty()) return Status::InvalidArgument("fault: needs at least one rule, e.g. error=eio&ops=write&rate=0.01");
  size_t start = 0;
  while (true) {
    size_t comma = spec.find(',', start);
    std::string_view part = spec.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (part.empty()) return Status::InvalidArgument("empty fault rule in '" + std::string(spec) + "'");
    SKERRY_ASSIGN_OR_RETURN(FaultRule rule, ParseRule(part));
    rules.push_back(std::move(rule));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return rules;
}

FaultStore::FaultStore(std::shared_ptr<ObjectStore> inner, std::vector<FaultRule> rules, std::string spec)
    : ForwardingStore(std::move(inner)), spec_(std::move(spec)) {
  for (FaultRule& r : rules) {
    auto armed = std::make_unique<ArmedRule>();
    armed->rng.seed(r.seed);
    armed->rule = std::move(r);
    rules_.push_back(std::move(armed));
  }
}

StoreCapabilities FaultStore::capabilities() const {
  StoreCapabilities caps = ForwardingStore::capabilities();
  for (auto& r : rules_)
    if (r->rule.delay_ms > 0) caps.native_async = false;  // a timeout sleeps on the caller's thread
  return caps;
}

std::string FaultStore::uri() const { return "fault:" + spec_ + "+" + ForwardingStore::uri(); }

std::optional<Status> FaultStore::Check(StoreOp op, std::initializer_list<std::string_view> names) {
  return CheckNames(op, std::span<const std::string_view>(names.begin(), names.size()));
}

std::optional<Status> FaultStore::Check(StoreOp op, const std::vector<std::string>& names) {
  std::vector<std::string_view> views(names.begin(), names.end());
  return CheckNames(op, views);
}

std::optional<Status> FaultStore::CheckNames(StoreOp op, std::span<const std::string_view> names) {
  if (!enabled_.load()) return std::nullopt;
  for (auto& armed : rules_) {
    const FaultRule& r = armed->rule;
    if (!(r.ops & Bit(op))) continue;
    if (!r.prefix.empty() &&
        std::none_of(names.begin(), names.end(), [&](std::string_view n) { return n.starts_with(r.prefix); }))
      continue;
    if (!r.trigger.empty() && access(r.trigger.c_str(), F_OK) != 0) continue;
    if (r.rate) {
      std::lock_guard lock(armed->mu);
      // 53 random bits as a fraction in [0, 1): the same sequence on every platform.
      if (static_cast<double>(armed->rng() >> 11) * 0x1p-53 >= *r.rate) continue;
    }
    injected_++;
    if (r.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(r.delay_ms));
    return MakeError(r.error, What(op, names));
  }
  return std::nullopt;
}

void FaultStore::Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) {
  if (auto st = Check(StoreOp::kRead, {name})) return done(std::move(*st));
  ForwardingStore::Read(name, offset, out, std::move(done));
}

void FaultStore::Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh, Done done) {
  if (auto st = Check(StoreOp::kWrite, {name})) return done(std::move(*st));
  ForwardingStore::Write(name, offset, data, fresh, std::move(done));
}

void FaultStore::Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) {
  if (auto st = Check(StoreOp::kZero, {name})) return done(std::move(*st));
  ForwardingStore::Zero(name, offset, length, std::move(done));
}

void FaultStore::Copy(const std::string& src, const std::string& dst, Done done) {
  if (auto st = Check(StoreOp::kCopy, {src, dst})) return done(std::move(*st));
  ForwardingStore::Copy(src, dst, std::move(done));
}

void FaultStore::Sync(std::vector<std::string> names, Done done) {
  if (auto st = Check(StoreOp::kSync, names)) return done(std::move(*st));
  ForwardingStore::Sync(std::move(names), std::move(done));
}

Result<std::string> FaultStore::Get(const std::string& name) {
  if (auto st = Check(StoreOp::kGet, {name})) return *st;
  return ForwardingStore::Get(name);
}

Status FaultStore::Put(const std::string& name, std::string_view data) {
  if (auto st = Check(StoreOp::kPut, {name})) return *st;
  return ForwardingStore::Put(name, data);
}

Status FaultStore::Create(const std::string& name, std::string_view data) {
  if (auto st = Check(StoreOp::kCreate, {name})) return *st;
  return ForwardingStore::Create(name, data);
}

Status FaultStore::CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) {
  if (auto st = Check(StoreOp::kCas, {name})) return *st;
  return ForwardingStore::CompareAndSwap(name, expected, desired);
}

Status FaultStore::Truncate(const std::string& name, uint64_t size) {
  if (auto st = Check(StoreOp::kTruncate, {name})) return *st;
  return ForwardingStore::Truncate(name, size);
}

Result<ObjectInfo> FaultStore::Stat(const std::string& name) {
  if (auto st = Check(StoreOp::kStat, {name})) return *st;
  return ForwardingStore::Stat(name);
}

Status FaultStore::Delete(const std::string& name) {
  if (auto st = Check(StoreOp::kDelete, {name})) return *st;
  return ForwardingStore::Delete(name);
}

Result<std::vector<std::string>> FaultStore::List(std::string_view prefix) {
  if (auto st = Check(StoreOp::kList, {prefix})) return *st;
  return ForwardingStore::List(prefix);
}

Status FaultStore::Lock(const std::string& name, const std::string& owner, int64_t lease_ms) {
  if (auto st = Check(StoreOp::kLock, {name})) return *st;
  return ForwardingStore::Lock(name, owner, lease_ms);
}

Status FaultStore::Unlock(const std::string& name, const std::string& owner) {
  if (auto st = Check(StoreOp::kLock, {name})) return *st;
  return ForwardingStore::Unlock(name, owner);
}

Result<LockInfo> FaultStore::GetLock(const std::string& name) {
  if (auto st = Check(StoreOp::kLock, {name})) return *st;
  return ForwardingStore::GetLock(name);
}

Status FaultStore::BreakLock(const std::string& name, const std::string& owner, bool fence) {
  if (auto st = Check(StoreOp::kLock, {name})) return *st;
  return ForwardingStore::BreakLock(name, owner, fence);
}

}  // namespace skerry
