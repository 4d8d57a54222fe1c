#include "daemon/export_registry.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace skerry::daemon {

ExportRegistry::ExportRegistry(std::unique_ptr<Catalog> catalog, ExportOptions options)
    : catalog_(std::move(catalog)), options_(std::move(options)) {}

ExportRegistry::~ExportRegistry() { CloseAll(); }

Result<std::shared_ptr<Volume>> ExportRegistry::OpenExport(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = open_.find(name);
  if (it != open_.end() && it->second.volume->role() == VolumeRole::kHandedOver) {
    spdlog::info("export {}: a new client after this daemon handed the volume over: a new open for it", name);
    handed_over_.emplace(name, it->second);
    open_.erase(it);
    it = open_.end();
  }
  if (it != open_.end()) {
    it->second.refs++;
    return it->second.volume;
  }
  OpenOptions options;
  options.owner = options_.owner;
  options.lease_ms = options_.lease_ms;
  options.handoff = options_.handoff ? Handoff::kCooperative : Handoff::kNever;
  options.owner_is_gone = options_.owner_is_gone;
  options.on_handoff = [](const std::string& line) { spdlog::info("export {}", line); };
  auto v = catalog_->Open(name, options);
  if (!v.ok()) {
    spdlog::warn("export {}: {}", name, v.status().ToString());
    return v.status();
  }
  std::shared_ptr<Volume> volume(std::move(*v));
  spdlog::info("export {}: opened {} ({} bytes)", name,
               volume->read_only() ? "read-only" : volume->role() == VolumeRole::kStandby ? "as a standby" : "read-write",
               volume->size());
  open_[name] = Open{volume, 1};
  return volume;
}

void ExportRegistry::ReleaseExport(const std::string& name, const std::shared_ptr<Volume>& volume) {
  std::lock_guard lock(mu_);
  auto close = [&](Open& o) {
    Status st = o.volume->Close();
    if (st.ok()) spdlog::info("export {}: last client left; flushed and closed", name);
    else spdlog::error("export {}: close failed: {}", name, st.ToString());
  };
  auto it = open_.find(name);
  if (it != open_.end() && it->second.volume == volume) {
    if (--it->second.refs > 0) return;
    close(it->second);
    open_.erase(it);
    return;
  }
  auto [first, last] = handed_over_.equal_range(name);
  for (auto h = first; h != last; ++h) {
    if (h->second.volume != volume) continue;
    if (--h->second.refs > 0) return;
    close(h->second);
    handed_over_.erase(h);
    return;
  }
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
  if (it == open_.end() || it->second.volume->role() != VolumeRole::kWriter)
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
  if (!target.lock_owner.empty() && target.lock_owner != options_.owner) {
    spdlog::warn("admin: a request for volume '{}' refused: its lock is held by '{}', not by this daemon ('{}')",
                 name, target.lock_owner, options_.owner);
    return Status::Conflict(fmt::format(
        "the lock on volume '{}' is held by '{}', not by this daemon ('{}'): this daemon serves another store",
        name, target.lock_owner, options_.owner));
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
  for (auto& [name, o] : open_) out.push_back({name, o.refs, o.volume->read_only(), o.volume->size(), o.volume->role()});
  for (auto& [name, o] : handed_over_)
    out.push_back({name, o.refs, o.volume->read_only(), o.volume->size(), o.volume->role()});
  return out;
}

void ExportRegistry::ReleasePredecessorLocks() {
  if (!options_.owner_is_gone) return;
  auto volumes = catalog_->List(false);
  if (!volumes.ok()) {
    spdlog::warn("locks of earlier instances: cannot list volumes: {}", volumes.status().ToString());
    return;
  }
  int released = 0;
  for (const VolumeInfo& v : *volumes) {
    std::lock_guard lock(mu_);  // not while a client opens it here (that open breaks it itself)
    if (open_.count(v.name)) continue;
    auto state = catalog_->LockState(v.name);
    if (!state.ok() || !state->holder || !options_.owner_is_gone(state->holder->owner)) continue;
    Status st = catalog_->BreakLock(v.name, state->holder->owner, /*fence=*/false);
    if (st.ok()) released++;
    else if (!st.IsNotFound()) spdlog::warn("volume {}: releasing the lock of a dead earlier instance: {}", v.name, st.ToString());
  }
  if (released > 0) spdlog::info("released the write locks of {} volumes that dead earlier instances held", released);
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
  for (auto& [name, o] : handed_over_) (void)o.volume->Close();  // nothing to flush: they write no more
  handed_over_.clear();
  return first;
}

}  // namespace skerry::daemon
