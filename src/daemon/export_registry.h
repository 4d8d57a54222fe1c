// ExportRegistry: the daemon's volumes, opened on a client's first connection and closed
// (flushed, lock released) when its last client leaves. Implements nbd::ExportProvider:
// every connection to one export name gets the same Volume object, which is what makes
// NBD multi-conn safe (nbd/export_provider.h).
//
// It also carries out operations the CLI sends to the admin socket on volumes that are
// open here (snapshot, resize): those run on the open Volume, which drains its in-flight
// I/O and holds new I/O for the moment they take, so clients stay connected.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nbd/export_provider.h"
#include "skerry/volume.h"

namespace skerry::daemon {

struct ExportStatus {
  std::string name;
  int clients = 0;
  bool read_only = false;
  uint64_t size = 0;
  VolumeRole role = VolumeRole::kWriter;
};

// How the daemon opens volumes for its clients (docs/operations.md, "Live migration").
struct ExportOptions {
  // Names this daemon in volume write locks; it carries the admin socket path so a CLI that
  // finds a volume locked knows whom to ask.
  std::string owner;
  int64_t lease_ms = 60'000;
  // Cooperative opens (standby, handoff) when true; exclusive ones otherwise.
  bool handoff = true;
  // OpenOptions::owner_is_gone: proof that a lock owner (a dead predecessor) is gone.
  std::function<bool(const std::string&)> owner_is_gone;
};

class ExportRegistry final : public nbd::ExportProvider {
 public:
  ExportRegistry(std::unique_ptr<Catalog> catalog, ExportOptions options);
  ~ExportRegistry() override;

  Result<std::shared_ptr<Volume>> OpenExport(const std::string& name) override;
  void ReleaseExport(const std::string& name, const std::shared_ptr<Volume>& volume) override;
  // Answers from the open volume if this daemon has it, else from a read-only open,
  // which takes no lock: describing a volume another daemon writes works too.
  Result<ExportInfo> DescribeExport(const std::string& name) override;
  Result<std::vector<std::string>> ListExports() override;

  // Which volume an admin request means: its name, and (when not empty) its id and the
  // owner string of the write lock the caller found in its store.
  struct Target {
    std::string volume, volume_id, lock_owner;
  };
  // Admin operations on a volume open here. NotFound if it is not open in this daemon;
  // Conflict if the volume open here under that name has another id, or the lock the caller
  // found is not this daemon's: the caller reached this daemon through another store's lock
  // (a path shared between hosts, a restart on another store or a synced copy of it).
  Status Snapshot(const Target& target, const std::string& snap);
  Status Resize(const Target& target, uint64_t size, bool allow_shrink);
  std::vector<ExportStatus> Exports() const;

  // Releases the write locks that dead earlier instances of this daemon still hold
  // (ExportOptions::owner_is_gone) on volumes no client has opened here yet, so other daemons
  // need not wait out those leases. Best effort, logged.
  void ReleasePredecessorLocks();

  // Flushes and closes every open volume (shutdown). Returns the first error.
  Status CloseAll();

 private:
  struct Open {
    std::shared_ptr<Volume> volume;
    int refs = 0;
  };
  Result<std::shared_ptr<Volume>> FindOpen(const Target& target);

  std::unique_ptr<Catalog> catalog_;
  const ExportOptions options_;
  mutable std::mutex mu_;  // guards open_ and handed_over_; held across opens and closes so they never race
  // The open each new client of a name gets.
  std::map<std::string, Open> open_;
  // Opens that handed their volume over to another daemon, kept until their last client
  // leaves: those clients' VM moved (or is a second VM by mistake) and must not write again,
  // while a new client (the VM migrating back) gets a new open, a standby.
  std::multimap<std::string, Open> handed_over_;
};

}  // namespace skerry::daemon
