// CheckStore: verifies a store's metadata and references, as `skerry check` runs it.
//
// Reads the directory, every volume header, snapshot record and map chunk (checking
// magic, version and CRC32C), checks that every object a map entry names exists, can
// re-hash content-addressed objects, and lists objects nothing references (leftovers of
// crashes; see docs/crash-contract.md). Changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "skerry/object_store.h"
#include "skerry/status.h"

namespace skerry {

struct CheckOptions {
  bool rehash = false;  // read every content-addressed object and compare its SHA-256
};

struct CheckProblem {
  std::string object;   // the object that is wrong or missing
  std::string volume;   // the volume (or "volume@snap") whose metadata led there, if any
  std::string problem;  // one line
};

struct CheckReport {
  uint64_t volumes = 0;
  uint64_t snapshots = 0;
  uint64_t chunks = 0;
  uint64_t referenced_objects = 0;
  std::vector<CheckProblem> problems;     // corruption and dangling references
  std::vector<std::string> unreferenced;  // objects nothing points at
  uint64_t unreferenced_bytes = 0;
  bool ok() const { return problems.empty(); }
};

// Fails only when the store itself cannot be read (listing fails); everything wrong
// inside the store is reported in the CheckReport.
Result<CheckReport> CheckStore(ObjectStore& store, const CheckOptions& options);

}  // namespace skerry
