// MemExportProvider: an ExportProvider over MemVolumes, for NBD tests only.
//
// Exports are added up front; every connection to one name gets the same
// MemVolume object, as the multi-conn contract of ExportProvider requires. It
// counts opens and releases so tests can check that every open is released.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mem_volume.h"
#include "nbd/export_provider.h"

namespace skerry::nbd::testing {

class MemExportProvider final : public ExportProvider {
 public:
  void Add(std::shared_ptr<MemVolume> volume);
  std::shared_ptr<MemVolume> Get(const std::string& name) const;

  Result<std::shared_ptr<Volume>> OpenExport(const std::string& name) override;
  void ReleaseExport(const std::string& name, const std::shared_ptr<Volume>& volume) override;
  Result<std::vector<std::string>> ListExports() override;

  uint64_t opens() const { return opens_.load(); }
  uint64_t releases() const { return releases_.load(); }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<MemVolume>> volumes_;
  std::atomic<uint64_t> opens_{0};
  std::atomic<uint64_t> releases_{0};
};

}  // namespace skerry::nbd::testing
