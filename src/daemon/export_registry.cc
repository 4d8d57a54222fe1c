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

Result<std::shared_ptr<Volume>> ExportRegistry::FindOpen(const std::string& name, const std::string& volume_id) {
  auto it = open_.find(name);
  if (it == open_.end() || it->second.volume->read_only())
    return Status::NotFound(fmt::format("volume '{}' is not open for writing in this daemon", name));
  const std::string have = it->second.volume->volume_id();
  if (!volume_id.empty() && volume_id != have) {
    // Another store's lock named this daemon's admin socket (a path shared between hosts
    // or daemons, a restart on another store): its volume of this name is not the one meant.
    spdlog::warn("admin: a request for volume '{}' with id {} refused: the volume open here has id {}", name,
                 volume_id, have);
    return Status::Conflict(fmt::format(
        "volume '{}' open in this daemon is another volume (id {}, not {}): this daemon serves another store",
        name, have, volume_id));
  }
  return it->second.volume;
}

Status ExportRegistry::Snapshot(const std::string& volume, const std::string& volume_id, const std::string& snap) {
  std::lock_guard lock(mu_);
  SKERRY_ASSIGN_OR_RETURN(auto v, FindOpen(volume, volume_id));
  Status st = v->CreateSnapshot(snap);
  if (st.ok()) spdlog::info("export {}: snapshot {}@{} taken while open", volume, volume, snap);
  else spdlog::warn("export {}: snapshot {} failed: {}", volume, snap, st.ToString());
  return st;
}

Status ExportRegistry::Resize(const std::string& volume, const std::string& volume_id, uint64_t size,
                              bool allow_shrink) {
  std::lock_guard lock(mu_);
  SKERRY_ASSIGN_OR_RETURN(auto v, FindOpen(volume, volume_id));
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
