#include "daemon/export_registry.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace skerry::daemon {

ExportRegistry::ExportRegistry(std::unique_ptr<Catalog> catalog, std::string owner, int64_t lease_ms)
    : catalog_(std::move(catalog)), owner_(std::move(owner)), lease_ms_(lease_ms) {}

ExportRegistry::~ExportRegistry() { CloseAll(); }

Result<std::shared_ptr<Volume>> ExportRegistry::OpenExport(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = open_.find(name);
  if (it != open_.end()) {
    it->second.refs++;
    return it->second.volume;
  }
  OpenOptions options;
  options.owner = owner_;
  options.lease_ms = lease_ms_;
  auto v = catalog_->Open(name, options);
  if (!v.ok()) {
    spdlog::warn("export {}: {}", name, v.status().ToString());
    return v.status();
  }
  std::shared_ptr<Volume> volume(std::move(*v));
  spdlog::info("export {}: opened {} ({} bytes)", name, volume->read_only() ? "read-only" : "read-write",
               volume->size());
  open_[name] = Open{volume, 1};
  return volume;
}

void ExportRegistry::ReleaseExport(const std::string& name, const std::shared_ptr<Volume>& volume) {
  std::lock_guard lock(mu_);
  auto it = open_.find(name);
  if (it == open_.end() || it->second.volume != volume) return;
  if (--it->second.refs > 0) return;
  Status st = it->second.volume->Close();
  if (st.ok()) spdlog::info("export {}: last client left; flushed and closed", name);
  else spdlog::error("export {}: close failed: {}", name, st.ToString());
  open_.erase(it);
}

Result<nbd::ExportProvider::ExportInfo> ExportRegistry::DescribeExport(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = open_.find(name);
    if (it != open_.end()) return ExportInfo{it->second.volume->size(), it->second.volume->read_only()};
  }
  OpenOptions options;
  options.read_only = true;
  SKERRY_ASSIGN_OR_RETURN(auto v, catalog_->Open(name, options));
  // The head of a volume is served read-write; a snapshot (NAME@SNAP) read-only.
  std::string volume, snap;
  SKERRY_RETURN_IF_ERROR(SplitSpec(name, &volume, &snap));
  return ExportInfo{v->size(), !snap.empty()};
}

Result<std::vector<std::string>> ExportRegistry::ListExports() {
  SKERRY_ASSIGN_OR_RETURN(auto volumes, catalog_->List(false));
  std::vector<std::string> names;
  for (const VolumeInfo& v : volumes) {
    names.push_back(v.name);
    for (const SnapshotInfo& s : v.snapshots) names.push_back(v.name + "@" + s.name);
  }
  return names;
}

Result<std::shared_ptr<Volume>> ExportRegistry::FindOpen(const Target& target) {
  const std::string& name = target.volume;
  auto it = open_.find(name);
  if (it == open_.end() || it->second.volume->read_only())
    return Status::NotFound(fmt::format("volume '{}' is not open for writing in this daemon", name));
  // The caller found this daemon through a lock's owner string, which names an admin socket
  // by path: a daemon serving another store (another host's path on a shared pool, a restart
  // on another store) may be listening there, with a volume of the same name.
  const std::string have = it->second.volume->volume_id();
  if (!target.volume_id.empty() && target.volume_id != have) {
    spdlog::warn("admin: a request for volume '{}' with id {} refused: the volume open here has id {}", name,
                 target.volume_id, have);
    return Status::Conflict(fmt::format(
        "volume '{}' open in this daemon is another volume (id {}, not {}): this daemon serves another store",
        name, have, target.volume_id));
  }
  // A synced copy of the store has the same ids: only the lock tells the stores apart.
  if (!target.lock_owner.empty() && target.lock_owner != owner_) {
    spdlog::warn("admin: a request for volume '{}' refused: its lock is held by '{}', not by this daemon ('{}')",
                 name, target.lock_owner, owner_);
    return Status::Conflict(fmt::format(
        "the lock on volume '{}' is held by '{}', not by this daemon ('{}'): this daemon serves another store",
        name, target.lock_owner, owner_));
  }
  return it->second.volume;
}

Status ExportRegistry::Snapshot(const Target& target, const std::string& snap) {
  std::lock_guard lock(mu_);
  SKERRY_ASSIGN_OR_RETURN(auto v, FindOpen(target));
  const std::string& volume = target.volume;
  Status st = v->CreateSnapshot(snap);
  if (st.ok()) spdlog::info("export {}: snapshot {}@{} taken while open", volume, volume, snap);
  else spdlog::warn("export {}: snapshot {} failed: {}", volume, snap, st.ToString());
  return st;
}

Status ExportRegistry::Resize(const Target& target, uint64_t size, bool allow_shrink) {
  std::lock_guard lock(mu_);
  SKERRY_ASSIGN_OR_RETURN(auto v, FindOpen(target));
  const std::string& volume = target.volume;
  Status st = v->Resize(size, allow_shrink);
  if (st.ok()) spdlog::info("export {}: resized to {} bytes (connected clients see it on reconnect)", volume, size);
  return st;
}

std::vector<ExportStatus> ExportRegistry::Exports() const {
  std::lock_guard lock(mu_);
  std::vector<ExportStatus> out;
  for (auto& [name, o] : open_) out.push_back({name, o.refs, o.volume->read_only(), o.volume->size()});
  return out;
}

Status ExportRegistry::CloseAll() {
  std::lock_guard lock(mu_);
  Status first;
  for (auto& [name, o] : open_) {
    Status st = o.volume->Close();
    if (!st.ok()) {
      spdlog::error("export {}: close failed: {}", name, st.ToString());
      if (first.ok()) first = st;
    }
  }
  open_.clear();
  return first;
}

}  // namespace skerry::daemon
