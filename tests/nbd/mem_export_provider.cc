#include "mem_export_provider.h"

namespace skerry::nbd::testing {

void MemExportProvider::Add(std::shared_ptr<MemVolume> volume) {
  std::lock_guard lock(mu_);
  std::string name = volume->name();
  volumes_[name] = std::move(volume);
}

std::shared_ptr<MemVolume> MemExportProvider::Get(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(name);
  return it == volumes_.end() ? nullptr : it->second;
}

Result<std::shared_ptr<Volume>> MemExportProvider::OpenExport(const std::string& name) {
  std::shared_ptr<MemVolume> volume = Get(name);
  if (!volume) return Status::NotFound("no export '" + name + "'");
  opens_++;
  return std::shared_ptr<Volume>(volume);
}

void MemExportProvider::ReleaseExport(const std::string&, const std::shared_ptr<Volume>&) {
  releases_++;
}

Result<std::vector<std::string>> MemExportProvider::ListExports() {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, volume] : volumes_) names.push_back(name);
  return names;
}

}  // namespace skerry::nbd::testing
