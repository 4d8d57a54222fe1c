#include "skerry/sync.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "util/crc32c.h"
#include "volume/format.h"
#include "volume/metadata.h"

namespace skerry {
namespace {

using volume::Directory;

// Locks and handoff requests belong to the store they were made in, never to a copy.
bool IsLock(const std::string& n) {
  return (n.size() > 5 && n.ends_with(".lock")) || (n.size() > 8 && n.ends_with(".handoff"));
}
bool IsHeader(const std::string& n) { return n.ends_with(".header"); }

// Writes `data` as `name` unless the target has it with the same content; verifies the copy.
Status PutVerified(ObjectStore& to, const std::string& name, const std::string& data, bool target_has,
                   bool* copied, uint64_t* bytes) {
  if (target_has) {
    auto existing = to.Get(name);
    if (existing.ok() && *existing == data) {
      *copied = false;
      return Status::OK();
    }
  }
  SKERRY_RETURN_IF_ERROR(to.Put(name, data).Prefixed("write " + name + " to the target"));
  SKERRY_ASSIGN_OR_RETURN(std::string back, to.Get(name));
  if (back.size() != data.size() || Crc32c(back) != Crc32c(data))
    return Status::Corruption(fmt::format("{}: the target returned different bytes than were written", name));
  *copied = true;
  *bytes = data.size();
  return Status::OK();
}

// Copies one object unless the target has it with the same content; verifies the copy.
Status CopyOne(ObjectStore& from, ObjectStore& to, const std::string& name, bool target_has, bool* copied,
               uint64_t* bytes) {
  SKERRY_ASSIGN_OR_RETURN(std::string data, from.Get(name));
  return PutVerified(to, name, data, target_has, copied, bytes);
}

}  // namespace

Result<SyncReport> SyncStores(ObjectStore& from, ObjectStore& to, const SyncOptions& options) {
  // The directory as it is now is what the target's becomes at the end, byte for byte: a
  // volume created during the sync is left out (its header may not be in the listing below),
  // and one removed during it stops the sync before the directory is written.
  const std::string directory(volume::kDirectoryObject);
  Result<std::string> dir_raw = from.Get(directory);
  if (!dir_raw.ok() && !dir_raw.status().IsNotFound()) return dir_raw.status();
  Directory dir;
  if (dir_raw.ok()) {
    SKERRY_ASSIGN_OR_RETURN(dir, volume::DecodeDirectory(*dir_raw, directory));
  }
  // A volume open for writing changes under us: refuse, naming it.
  for (const auto& e : dir.entries) {
    auto lock = from.GetLock(volume::LockObject(e.id));
    if (lock.ok() && lock->expires_unix_ms > volume::NowUnixMs())
      return Status::Busy(fmt::format("volume '{}' is open for writing ({}); close it before syncing", e.name,
                                      lock->owner));
  }
  // A target with volumes of its own would lose them when the directory is replaced.
  SKERRY_ASSIGN_OR_RETURN(Directory target_dir, volume::ReadDirectory(to));
  for (const auto& e : target_dir.entries) {
    const auto* same = dir.Find(e.name);
    if (!same || same->id != e.id)
      return Status::AlreadyExists(fmt::format("the target already has a volume '{}' that the source does not; "
                                               "sync only into an empty store or an earlier copy of this one",
                                               e.name));
  }
  SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> names, from.List(""));
  SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> present, to.List(""));
  std::set<std::string> on_target(present.begin(), present.end());
  std::vector<std::string> data, headers;
  for (const std::string& n : names) {
    if (IsLock(n) || n == directory) continue;
    (IsHeader(n) ? headers : data).push_back(n);
  }
  SyncReport report;
  report.objects = data.size() + headers.size() + 1;
  std::atomic<uint64_t> done{0}, copied{0}, bytes{0};
  std::mutex mu;
  Status first_error;
  auto note = [&] {
    uint64_t d = ++done;
    if (options.progress) {
      std::lock_guard lock(mu);
      options.progress(d, report.objects);
    }
  };
  // Phase by phase; within a phase, objects are independent and copied in parallel.
  auto run_phase = [&](const std::vector<std::string>& phase) -> Status {
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (;;) {
        size_t i = next++;
        if (i >= phase.size()) return;
        {
          std::lock_guard lock(mu);
          if (!first_error.ok()) return;
        }
        bool did = false;
        uint64_t n = 0;
        Status st = CopyOne(from, to, phase[i], on_target.count(phase[i]) > 0, &did, &n);
        if (!st.ok()) {
          std::lock_guard lock(mu);
          if (first_error.ok()) first_error = st;
          return;
        }
        if (did) {
          copied++;
          bytes += n;
        }
        note();
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < std::max(1, options.threads); t++) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    return first_error;
  };
  SKERRY_RETURN_IF_ERROR(run_phase(data));
  SKERRY_RETURN_IF_ERROR(run_phase(headers));
  if (dir_raw.ok()) {
    for (const auto& e : dir.entries)
      if (!to.Stat(volume::HeaderObject(e.id)).ok())
        return Status::Conflict(fmt::format("volume '{}' was removed from the source during the sync; the "
                                            "target's directory was left as it was: run the sync again",
                                            e.name));
    bool did = false;
    uint64_t n = 0;
    SKERRY_RETURN_IF_ERROR(PutVerified(to, directory, *dir_raw, on_target.count(directory) > 0, &did, &n));
    copied += did ? 1 : 0;
    bytes += n;
    note();  // counted and reported like every other object
  }
  report.copied = copied;
  report.bytes_copied = bytes;
  report.skipped = done - copied;
  return report;
}

}  // namespace skerry
