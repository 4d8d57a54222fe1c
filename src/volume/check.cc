// CheckStore (include/skerry/check.h): walks everything reachable from the directory,
// then compares with what the store lists.
#include "skerry/check.h"

#include <fmt/format.h>

#include <set>

#include "volume/format.h"
#include "volume/map_objects.h"
#include "volume/metadata.h"
#include "volume/volume_map.h"

namespace skerry {
namespace {

using volume::ChunkRef;
using volume::VolumeId;

class Checker {
 public:
  Checker(ObjectStore& store, const CheckOptions& options, CheckReport* report)
      : store_(store), options_(options), report_(report) {}

  Status Run() {
    SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> all, store_.List(""));
    existing_.insert(all.begin(), all.end());
    referenced_.insert(std::string(volume::kDirectoryObject));
    auto dir = volume::ReadDirectory(store_);
    if (!dir.ok()) {
      Problem(std::string(volume::kDirectoryObject), "", dir.status().message());
      return Status::OK();  // nothing else is reachable; everything is "unreferenced"
    }
    for (const volume::DirectoryEntry& e : dir->entries) CheckVolume(e.name, e.id);
    for (const std::string& name : all) {
      if (referenced_.count(name)) continue;
      report_->unreferenced.push_back(name);
      if (auto st = store_.Stat(name); st.ok()) report_->unreferenced_bytes += st->size;
    }
    report_->referenced_objects = referenced_.size();
    return Status::OK();
  }

 private:
  void Problem(std::string object, std::string volume, std::string what) {
    report_->problems.push_back({std::move(object), std::move(volume), std::move(what)});
  }

  // Whether `name` exists: in the listing taken at the start, or made since. A store in use
  // gains objects while it is checked (a flush writes new chunks and blocks, then a header
  // naming them), and those must not read as missing.
  bool Exists(const std::string& name) {
    if (existing_.count(name)) return true;
    if (!store_.Stat(name).ok()) return false;
    existing_.insert(name);
    return true;
  }

  // After a header or snapshot record could not be read: whether it is gone because its
  // volume or snapshot was removed while the check ran (then there is nothing to report).
  bool VolumeRemovedMeanwhile(const std::string& name, const VolumeId& id) {
    auto dir = volume::ReadDirectory(store_);
    if (!dir.ok()) return false;
    const volume::DirectoryEntry* e = dir->Find(name);
    return e == nullptr || e->id != id;
  }
  bool SnapshotRemovedMeanwhile(const VolumeId& id, uint64_t snap_id) {
    auto h = volume::ReadHeader(store_, id);
    return h.ok() && h->FindSnapshotById(snap_id) == nullptr;
  }

  void CheckVolume(const std::string& name, const VolumeId& id) {
    report_->volumes++;
    std::string header_name = volume::HeaderObject(id);
    referenced_.insert(header_name);
    referenced_.insert(volume::LockObject(id));     // may or may not exist
    referenced_.insert(volume::HandoffObject(id));  // the same
    auto h = volume::ReadHeader(store_, id);
    if (!h.ok()) {
      if (h.status().IsNotFound() && VolumeRemovedMeanwhile(name, id)) {
        report_->volumes--;
        return;
      }
      Problem(header_name, name, h.status().message());
      return;
    }
    CheckMap(name, volume::MapSpec::Of(*h));
    for (const volume::SnapshotEntry& s : h->snapshots) {
      report_->snapshots++;
      std::string spec = name + "@" + s.name;
      std::string rec_name = volume::SnapshotObject(id, s.id);
      referenced_.insert(rec_name);
      auto rec = volume::ReadSnapshotRecord(store_, id, s.id);
      if (!rec.ok()) {
        // (A record that is not there reads as Corruption: a header names it.)
        if (!store_.Stat(rec_name).ok() && SnapshotRemovedMeanwhile(id, s.id)) {
          report_->snapshots--;
          continue;
        }
        Problem(rec_name, spec, rec.status().message());
        continue;
      }
      CheckMap(spec, volume::MapSpec::Of(*rec));
    }
    if (!h->parent_id.IsZero()) {
      auto parent = volume::ReadHeader(store_, h->parent_id);
      if (!parent.ok() || !parent->FindSnapshotById(h->parent_snap_id))
        Problem(volume::HeaderObject(h->parent_id), name,
                fmt::format("parent snapshot {} of this clone is missing", h->parent_snap_id));
    }
  }

  void CheckMap(const std::string& spec, const volume::MapSpec& map) {
    // Chunks shared between a volume and its snapshots and clones are checked once.
    volume::MapObjectVisitor visit;
    visit.chunk = [&](uint64_t, const ChunkRef&, const std::string& cname) {
      if (!referenced_.insert(cname).second) return false;
      report_->chunks++;
      if (Exists(cname)) return true;
      Problem(cname, spec, "map chunk is missing");
      return false;
    };
    visit.block = [&](uint64_t block, const volume::Entry& e, const std::string& obj, const std::string& base) {
      // A partial block reads its other granules from its base (the parent's object).
      if (!base.empty() && referenced_.insert(base).second && !Exists(base))
        Problem(base, spec, fmt::format("block {} is partial over a missing object", block));
      if (!referenced_.insert(obj).second) return;
      if (!Exists(obj)) {
        Problem(obj, spec, fmt::format("block {} points at a missing object", block));
        return;
      }
      if (options_.rehash && e.kind == volume::Entry::Kind::kContent) {
        auto data = store_.Get(obj);
        if (!data.ok()) Problem(obj, spec, data.status().message());
        else if (Sha256(*data) != e.digest) Problem(obj, spec, "content does not match its SHA-256 name");
      }
    };
    visit.chunk_error = [&](uint64_t, const std::string& cname, const Status& st) { Problem(cname, spec, st.message()); };
    (void)volume::ForEachMapObject(store_, map, visit);  // every error is a Problem
  }

  ObjectStore& store_;
  const CheckOptions& options_;
  CheckReport* report_;
  std::set<std::string> existing_;
  std::set<std::string> referenced_;
};

}  // namespace

Result<CheckReport> CheckStore(ObjectStore& store, const CheckOptions& options) {
  CheckReport report;
  SKERRY_RETURN_IF_ERROR(Checker(store, options, &report).Run());
  return report;
}

}  // namespace skerry
