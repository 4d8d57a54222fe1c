// Import of a raw image into a new volume, and export of a volume or snapshot to a raw file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "skerry/volume.h"

namespace skerry::cli {

struct TransferStats {
  uint64_t bytes = 0;          // size of the image
  uint64_t data_bytes = 0;     // bytes actually written (not zero)
  uint64_t skipped_bytes = 0;  // all-zero or hole ranges not stored
  double seconds = 0;
};

// Creates `name` from the raw image `path` ("-" is standard input). All-zero blocks are not
// stored. On any failure the half-made volume is removed.
Result<TransferStats> Import(Catalog& catalog, const std::string& path, const std::string& name,
                             std::optional<uint64_t> size, uint32_t block_size);

// Writes the bytes of `path` ("-": standard input) into the existing volume `name` at
// `offset`, and flushes. Refuses a file that would run past the end of the volume before
// writing anything; a stream that does is written up to the end, then refused.
Result<TransferStats> WriteInto(Catalog& catalog, const std::string& name, uint64_t offset, const std::string& path);

// Writes `spec` ("vol" or "vol@snap") to `path` ("-": standard output). A file is written
// sparse: holes and all-zero blocks are skipped, and the file is synced at the end. A file
// is written as a temporary beside it and renamed over it when complete, so a failed export
// leaves the old file (it becomes a new inode: hard links keep the old contents); a device
// or pipe is written in place.
Result<TransferStats> Export(Catalog& catalog, const std::string& spec, const std::string& path);

}  // namespace skerry::cli
