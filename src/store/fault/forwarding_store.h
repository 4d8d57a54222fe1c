// ForwardingStore: an ObjectStore that passes every call to another one.
//
// The base of the store decorators in this folder (FaultStore, DelayStore): a decorator
// overrides only what it changes. Lease locks go to the inner store's own Lock/Unlock/
// GetLock/BreakLock, so a store with native locks (and fencing) keeps them under a decorator.
//
// Thread-safety: as the inner store.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "skerry/object_store.h"

namespace skerry {

class ForwardingStore : public ObjectStore {
 public:
  // REQUIRES: inner != nullptr.
  explicit ForwardingStore(std::shared_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}

  // Not pipe_reads: a decorator sees (and may delay, fail or hold back) every read, so
  // reads go through Read, never around it to the inner store's files.
  StoreCapabilities capabilities() const override {
    StoreCapabilities caps = inner_->capabilities();
    caps.pipe_reads = false;
    return caps;
  }
  std::string uri() const override { return inner_->uri(); }

  void Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) override {
    inner_->Read(name, offset, out, std::move(done));
  }
  void Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh,
             Done done) override {
    inner_->Write(name, offset, data, fresh, std::move(done));
  }
  void Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) override {
    inner_->Zero(name, offset, length, std::move(done));
  }
  void Copy(const std::string& src, const std::string& dst, Done done) override {
    inner_->Copy(src, dst, std::move(done));
  }
  void Sync(std::vector<std::string> names, Done done) override { inner_->Sync(std::move(names), std::move(done)); }

  Result<std::string> Get(const std::string& name) override { return inner_->Get(name); }
  Status Put(const std::string& name, std::string_view data) override { return inner_->Put(name, data); }
  Status Create(const std::string& name, std::string_view data) override { return inner_->Create(name, data); }
  Status CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) override {
    return inner_->CompareAndSwap(name, expected, desired);
  }
  Status Truncate(const std::string& name, uint64_t size) override { return inner_->Truncate(name, size); }
  Result<ObjectInfo> Stat(const std::string& name) override { return inner_->Stat(name); }
  Status Delete(const std::string& name) override { return inner_->Delete(name); }
  Result<std::vector<std::string>> List(std::string_view prefix) override { return inner_->List(prefix); }

  Status Lock(const std::string& name, const std::string& owner, int64_t lease_ms) override {
    return inner_->Lock(name, owner, lease_ms);
  }
  Status Unlock(const std::string& name, const std::string& owner) override { return inner_->Unlock(name, owner); }
  Result<LockInfo> GetLock(const std::string& name) override { return inner_->GetLock(name); }
  Status BreakLock(const std::string& name, const std::string& owner, bool fence) override {
    return inner_->BreakLock(name, owner, fence);
  }

 private:
  const std::shared_ptr<ObjectStore> inner_;
};

}  // namespace skerry
