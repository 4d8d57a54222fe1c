#include "store/mem/mem_store.h"

#include <algorithm>
#include <cstring>

namespace skerry {
namespace {

Status CheckName(const std::string& name) {
  if (IsValidObjectName(name)) return Status::OK();
  return Status::InvalidArgument("invalid object name '" + name + "'");
}

// Refuses ranges ending past kMaxObjectSize (including ones whose end overflows).
Status CheckEnd(uint64_t offset, uint64_t length) {
  if (length > MemStore::kMaxObjectSize || offset > MemStore::kMaxObjectSize - length) {
    return Status::InvalidArgument("mem store objects are limited to 1 GiB");
  }
  return Status::OK();
}

Status MissingObject(const std::string& name) {
  return Status::NotFound("object '" + name + "'");
}

}  // namespace

StoreCapabilities MemStore::capabilities() const {
  StoreCapabilities caps;
  caps.server_side_copy = true;
  caps.cheap_copy = false;  // Copy duplicates the bytes
  caps.native_async = false;  // completes inline (only memcpy, never blocks on I/O)
  caps.persistent = false;
  caps.durable_writes = true;
  return caps;
}

// ---- data path: the Do* helpers do the work, the overrides complete inline ----

void MemStore::Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) {
  Status st = DoRead(name, offset, out);
  if (st.ok()) {
    done(out.size());
  } else {
    done(std::move(st));
  }
}

void MemStore::Write(const std::string& name, uint64_t offset, std::span<const char> data,
                     bool fresh, Done done) {
  done(DoWrite(name, offset, data, fresh));
}

void MemStore::Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) {
  done(DoZero(name, offset, length));
}

void MemStore::Copy(const std::string& src, const std::string& dst, Done done) {
  done(DoCopy(src, dst));
}

void MemStore::Sync(std::vector<std::string> names, Done done) {
  for (const std::string& name : names) {
    Status st = CheckName(name);
    if (!st.ok()) return done(st);
  }
  done(Status::OK());
}

Status MemStore::DoRead(const std::string& name, uint64_t offset, std::span<char> out) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(name);
  if (it == objects_.end()) return MissingObject(name);
  const std::string& bytes = it->second;
  size_t have = offset < bytes.size() ? std::min<uint64_t>(bytes.size() - offset, out.size()) : 0;
  if (have > 0) std::memcpy(out.data(), bytes.data() + offset, have);
  std::memset(out.data() + have, 0, out.size() - have);
  return Status::OK();
}

Status MemStore::DoWrite(const std::string& name, uint64_t offset, std::span<const char> data,
                         bool fresh) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckEnd(offset, data.size()));
  std::lock_guard<std::mutex> lock(mu_);
  std::string& bytes = objects_[name];
  if (fresh) bytes.clear();
  if (data.empty()) return Status::OK();  // writes no byte, so the size stays
  if (bytes.size() < offset + data.size()) bytes.resize(offset + data.size(), '\0');
  std::memcpy(bytes.data() + offset, data.data(), data.size());
  return Status::OK();
}

Status MemStore::DoZero(const std::string& name, uint64_t offset, uint64_t length) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckEnd(offset, length));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(name);
  if (it == objects_.end()) return MissingObject(name);
  std::string& bytes = it->second;
  uint64_t end = offset + length;
  if (offset < bytes.size()) {
    std::fill(bytes.begin() + offset, bytes.begin() + std::min<uint64_t>(end, bytes.size()), '\0');
  }
  if (length > 0 && bytes.size() < end) bytes.resize(end, '\0');
  return Status::OK();
}

Status MemStore::DoCopy(const std::string& src, const std::string& dst) {
  SKERRY_RETURN_IF_ERROR(CheckName(src));
  SKERRY_RETURN_IF_ERROR(CheckName(dst));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(src);
  if (it == objects_.end()) return MissingObject(src);
  if (src != dst) objects_[dst] = it->second;
  return Status::OK();
}

// ---- control path ----

Result<std::string> MemStore::Get(const std::string& name) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(name);
  if (it == objects_.end()) return MissingObject(name);
  return it->second;
}

Status MemStore::Put(const std::string& name, std::string_view data) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckEnd(0, data.size()));
  std::lock_guard<std::mutex> lock(mu_);
  objects_[name] = std::string(data);
  return Status::OK();
}

Status MemStore::Create(const std::string& name, std::string_view data) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckEnd(0, data.size()));
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = objects_.try_emplace(name, data);
  if (!inserted) return Status::AlreadyExists("object '" + name + "'");
  return Status::OK();
}

Status MemStore::CompareAndSwap(const std::string& name, std::string_view expected,
                                std::string_view desired) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckEnd(0, desired.size()));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(name);
  if (it == objects_.end()) return MissingObject(name);
  if (it->second != expected) return Status::Conflict("object '" + name + "' changed");
  it->second = std::string(desired);
  return Status::OK();
}

Status MemStore::Truncate(const std::string& name, uint64_t size) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckEnd(0, size));
  std::lock_guard<std::mutex> lock(mu_);
  objects_[name].resize(size, '\0');
  return Status::OK();
}

Result<ObjectInfo> MemStore::Stat(const std::string& name) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(name);
  if (it == objects_.end()) return MissingObject(name);
  return ObjectInfo{it->second.size()};
}

Status MemStore::Delete(const std::string& name) {
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> lock(mu_);
  if (objects_.erase(name) == 0) return MissingObject(name);
  return Status::OK();
}

Result<std::vector<std::string>> MemStore::List(std::string_view prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (auto it = objects_.lower_bound(prefix); it != objects_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    names.push_back(it->first);
  }
  return names;
}

}  // namespace skerry
