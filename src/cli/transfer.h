// Import of an image into a new volume, and export of a volume or snapshot to a raw file
// (image_transfer.h writes the other formats).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "skerry/volume.h"

namespace skerry::cli {

struct TransferStats {
  uint64_t bytes = 0;          // size of the image
  uint64_t data_bytes = 0;     // bytes actually written (not zero)
  uint64_t skipped_bytes = 0;  // all-zero or hole ranges not stored
  double seconds = 0;
  std::string format;          // the image's format
  std::vector<std::string> backing;  // an imported image's backing files, nearest first
};

// Creates `name` from the image `path`: its format probed (ProbeImage), or `format` if not
// empty. "-" is standard input, read as raw only. All-zero blocks are not stored. The volume
// is filled under a staging name and renamed to `name` when complete; on any failure or
// Ctrl-C the half-made volume is removed.
Result<TransferStats> Import(Catalog& catalog, const std::string& path, const std::string& name,
                             std::optional<uint64_t> size, uint32_t block_size, const std::string& format);

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

// Where an export writes. A regular file (or a path not there yet) is written as a
// temporary file beside it and renamed over it only once complete, so a failed export
// leaves last night's backup as it was. A device or a pipe (/dev/sdX, /dev/stdout) cannot
// be replaced by a rename and is written in place.
struct ExportTarget {
  int fd = -1;
  bool owned = true;  // false for standard output, which stays open
  std::string tmp;    // empty: writing in place
  std::string dest;   // what tmp is renamed to: the path, or the file a symlink points at
};
Result<ExportTarget> OpenExportTarget(const std::string& path);
// Syncs and renames a temporary export over its destination (and syncs the directory).
Status FinishExport(ExportTarget& t, const std::string& path);
// A failed export: the temporary file goes, the file it was to replace stays as it was.
void AbandonExport(ExportTarget& t);

}  // namespace skerry::cli
