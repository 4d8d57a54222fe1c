// Image formats through qemu-img: which format a file is (probed, never assumed), whether it
// can be read whole, and running `qemu-img convert` with its errors turned into one line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "skerry/status.h"

namespace skerry::cli {

// The formats import and export take (qemu-img's names).
const std::vector<std::string>& ImageFormats();
// InvalidArgument unless `format` is one of ImageFormats().
Status CheckFormatName(const std::string& format);
// The format an export to `path` writes: `forced` if given, else from the file's extension
// (.qcow2 .vmdk .vhdx .vdi), else raw.
Result<std::string> ExportFormatFor(const std::string& path, const std::string& forced);

struct ImageProbe {
  std::string format;                 // qemu-img's name, e.g. "qcow2"
  uint64_t virtual_size = 0;          // the disk's size in bytes
  std::vector<std::string> backing;   // backing files, nearest first
};

// What `path` is: `qemu-img info` (with `-f forced` when given) and a check that every
// data extent lies inside its file (a truncated image reads as zeros past its end and
// would import silently). Refuses, with one line, an image qemu-img cannot open, a format
// outside ImageFormats(), and, when not forced, a file probed as raw that looks like no
// disk: compressed or archived, or a size that is not a multiple of 512.
Result<ImageProbe> ProbeImage(const std::string& path, const std::string& forced);

// `path` as qemu-img must be given a file: starting with "/" or "./", so that neither a
// leading '-' (an option) nor a ':' (a protocol prefix such as nbd: or json:) is read.
std::string QemuPath(const std::string& path);

// Runs qemu-img with `args`. With `progress`, passes -p-style output (qemu-img prints it on
// its stdout) through to our stderr. A failure is one line: `what`, then qemu-img's last
// error line. On SIGINT/SIGTERM (Interrupted()) qemu-img is stopped and this fails.
Status RunQemuImg(const std::vector<std::string>& args, const std::string& what, bool progress);

}  // namespace skerry::cli
