// Import and export of qcow2, vmdk, vhdx and vdi images: qemu-img does the format, skerry's
// own NBD server (src/nbd) does the volume. The CLI serves the one volume in-process on a
// private Unix socket and runs `qemu-img convert` against it as the NBD client, so the
// image streams straight between its file and the store: no temporary full copy, and holes
// and all-zero areas are neither stored (import) nor read (export: NBD block status).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cli/qemu_img.h"
#include "cli/transfer.h"
#include "skerry/volume.h"

namespace skerry::cli {

// Fills the new, empty, open volume `volume` from `path` as read by `probe`; `stats` gets
// the disk's size and how much of it holds data.
Status FillFromImage(Volume& volume, const std::string& path, const ImageProbe& probe, bool progress,
                     TransferStats* stats);

// Writes `spec` ("vol" or "vol@snap") to `path` as a `format` image (not raw: Export does
// raw). The file is written as a temporary beside it and renamed over it when complete.
Result<TransferStats> ExportImage(Catalog& catalog, const std::string& spec, const std::string& path,
                                  const std::string& format, bool progress);

}  // namespace skerry::cli
