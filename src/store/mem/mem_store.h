// MemStore: the "mem:" store, objects held in this process's memory.
//
// For tests of the layers above (volumes, NBD, CLI) and for trying things out: it is
// fast, needs no files, and forgets everything when the last reference goes. Every
// call completes inline on the caller's thread before it returns; nothing is ever
// persistent, and every completed write is as "durable" as it will ever be, so Sync
// is free. Objects are plain byte strings (no holes), at most kMaxObjectSize bytes.
//
// Thread-safety: all methods may be called concurrently; one mutex guards the map
// and the bytes (the store is for tests, not for speed under contention).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "skerry/object_store.h"

namespace skerry {

class MemStore final : public ObjectStore {
 public:
  // Far above any block size; refuses offsets that would make the process allocate
  // absurd amounts of memory.
  static constexpr uint64_t kMaxObjectSize = 1ull << 30;

  MemStore() = default;

  StoreCapabilities capabilities() const override;
  std::string uri() const override { return "mem:"; }

  void Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) override;
  void Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh,
             Done done) override;
  void Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) override;
  void Copy(const std::string& src, const std::string& dst, Done done) override;
  void Sync(std::vector<std::string> names, Done done) override;

  Result<std::string> Get(const std::string& name) override;
  Status Put(const std::string& name, std::string_view data) override;
  Status Create(const std::string& name, std::string_view data) override;
  Status CompareAndSwap(const std::string& name, std::string_view expected,
                        std::string_view desired) override;
  Status Truncate(const std::string& name, uint64_t size) override;
  Result<ObjectInfo> Stat(const std::string& name) override;
  Status Delete(const std::string& name) override;
  Result<std::vector<std::string>> List(std::string_view prefix) override;

 private:
  Status DoRead(const std::string& name, uint64_t offset, std::span<char> out);
  Status DoWrite(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh);
  Status DoZero(const std::string& name, uint64_t offset, uint64_t length);
  Status DoCopy(const std::string& src, const std::string& dst);

  std::mutex mu_;
  std::map<std::string, std::string, std::less<>> objects_;  // GUARDED_BY(mu_); sorted for List
};

}  // namespace skerry
