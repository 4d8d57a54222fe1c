#include "volume/metadata.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace skerry::volume {
namespace {

// CAS conflicts mean another writer got in first; retry a bounded number of times.
constexpr int kMaxCasAttempts = 1000;

}  // namespace

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<Directory> ReadDirectory(ObjectStore& store) {
  Result<std::string> raw = store.Get(std::string(kDirectoryObject));
  if (!raw.ok()) {
    if (raw.status().IsNotFound()) return Directory{};
    return raw.status();
  }
  return DecodeDirectory(*raw, kDirectoryObject);
}

Status UpdateDirectory(ObjectStore& store, const std::function<Status(Directory&)>& change) {
  const std::string name(kDirectoryObject);
  for (int attempt = 0; attempt < kMaxCasAttempts; attempt++) {
    Result<std::string> raw = store.Get(name);
    bool exists = raw.ok();
    if (!exists && !raw.status().IsNotFound()) return raw.status();
    Directory dir;
    if (exists) {
      SKERRY_ASSIGN_OR_RETURN(dir, DecodeDirectory(*raw, name));
    }
    SKERRY_RETURN_IF_ERROR(change(dir));
    std::sort(dir.entries.begin(), dir.entries.end(),
              [](const DirectoryEntry& a, const DirectoryEntry& b) { return a.name < b.name; });
    std::string next = EncodeDirectory(dir);
    Status st = exists ? store.CompareAndSwap(name, *raw, next) : store.Create(name, next);
    if (st.ok()) return st;
    if (!st.IsConflict() && !st.IsAlreadyExists() && !st.IsNotFound()) return st;
  }
  return Status::Busy("the volume directory keeps changing under us; try again");
}

Result<Header> ReadHeader(ObjectStore& store, const VolumeId& id) {
  std::string name = HeaderObject(id);
  SKERRY_ASSIGN_OR_RETURN(std::string raw, store.Get(name));
  SKERRY_ASSIGN_OR_RETURN(Header h, DecodeHeader(raw, name));
  if (h.id != id) return Status::Corruption(fmt::format("{}: holds the header of volume {}", name, h.id.Hex()));
  return h;
}

Status UpdateHeader(ObjectStore& store, const VolumeId& id, const std::function<Status(Header&)>& change) {
  std::string name = HeaderObject(id);
  for (int attempt = 0; attempt < kMaxCasAttempts; attempt++) {
    SKERRY_ASSIGN_OR_RETURN(std::string raw, store.Get(name));
    SKERRY_ASSIGN_OR_RETURN(Header h, DecodeHeader(raw, name));
    SKERRY_RETURN_IF_ERROR(change(h));
    h.generation++;
    Status st = store.CompareAndSwap(name, raw, EncodeHeader(h));
    if (st.ok() || !st.IsConflict()) return st;
  }
  return Status::Busy(fmt::format("{} keeps changing under us; try again", name));
}

Result<SnapshotRecord> ReadSnapshotRecord(ObjectStore& store, const VolumeId& id, uint64_t snap_id) {
  std::string name = SnapshotObject(id, snap_id);
  Result<std::string> raw = store.Get(name);
  if (!raw.ok()) {
    if (raw.status().IsNotFound()) return Status::Corruption(fmt::format("snapshot record {} is missing", name));
    return raw.status();
  }
  SKERRY_ASSIGN_OR_RETURN(SnapshotRecord rec, DecodeSnapshotRecord(*raw, name));
  if (rec.volume != id || rec.id != snap_id)
    return Status::Corruption(fmt::format("{}: holds snapshot {} of volume {}", name, rec.id, rec.volume.Hex()));
  return rec;
}

}  // namespace skerry::volume
