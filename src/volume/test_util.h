// Helpers for volume tests: a store per test (mem: or a fresh dir:), a store decorator
// that counts calls, and byte patterns.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "skerry/object_store.h"
#include "skerry/volume.h"

namespace skerry::testing {

// A fresh temporary directory, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "skerry-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Passes every call through to `inner`, counting data-path reads and copies.
class CountingStore : public ObjectStore {
 public:
  explicit CountingStore(std::shared_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}
  std::atomic<int> reads{0}, copies{0}, writes{0};

  StoreCapabilities capabilities() const override { return inner_->capabilities(); }
  std::string uri() const override { return inner_->uri(); }
  void Read(const std::string& n, uint64_t o, std::span<char> out, ReadDone d) override {
    reads++;
    inner_->Read(n, o, out, std::move(d));
  }
  void Write(const std::string& n, uint64_t o, std::span<const char> data, bool fresh, Done d) override {
    writes++;
    inner_->Write(n, o, data, fresh, std::move(d));
  }
  void Zero(const std::string& n, uint64_t o, uint64_t l, Done d) override { inner_->Zero(n, o, l, std::move(d)); }
  void Copy(const std::string& s, const std::string& d, Done done) override {
    copies++;
    inner_->Copy(s, d, std::move(done));
  }
  void Sync(std::vector<std::string> names, Done d) override { inner_->Sync(std::move(names), std::move(d)); }
  Result<std::string> Get(const std::string& n) override { return inner_->Get(n); }
  Status Put(const std::string& n, std::string_view d) override { return inner_->Put(n, d); }
  Status Create(const std::string& n, std::string_view d) override { return inner_->Create(n, d); }
  Status CompareAndSwap(const std::string& n, std::string_view e, std::string_view d) override {
    return inner_->CompareAndSwap(n, e, d);
  }
  Status Truncate(const std::string& n, uint64_t s) override { return inner_->Truncate(n, s); }
  Result<ObjectInfo> Stat(const std::string& n) override { return inner_->Stat(n); }
  Status Delete(const std::string& n) override { return inner_->Delete(n); }
  Result<std::vector<std::string>> List(std::string_view p) override { return inner_->List(p); }
  Status Lock(const std::string& n, const std::string& o, int64_t l) override { return inner_->Lock(n, o, l); }
  Status Unlock(const std::string& n, const std::string& o) override { return inner_->Unlock(n, o); }
  Result<LockInfo> GetLock(const std::string& n) override { return inner_->GetLock(n); }

 private:
  std::shared_ptr<ObjectStore> inner_;
};

// Deterministic bytes that differ by position and seed, so misplaced data is caught.
inline std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

}  // namespace skerry::testing
