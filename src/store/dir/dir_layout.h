// DirLayout: where a dir store keeps what under its root directory, and the marker
// file that says a directory is one (docs/stores.md has the full picture).
//
//   ROOT/skerry-store          marker: "skerry dir store\nformat 1\n"
//   ROOT/objects/XX/NAME       object NAME; XX = two hex digits of crc32c(NAME) & 0xff
//   ROOT/tmp/                  temporaries, renamed or linked into objects/ when complete
//   ROOT/locks/cas             byte XX is locked (fcntl OFD) around compare-and-swap,
//                              put and delete of objects in shard XX
//
// The shard function and the lock byte per shard are part of format 1: every process
// and host sharing a directory must agree on them.
//
// Thread-safety: an immutable value once prepared; safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "skerry/status.h"

namespace skerry::dirstore {

class DirLayout {
 public:
  static constexpr int kFormatVersion = 1;
  static constexpr uint32_t kShards = 256;
  static constexpr const char* kMarkerName = "skerry-store";

  // Makes `root` a dir store if it is missing or empty, or checks that it already is
  // one, and (re)creates any missing part of the tree. InvalidArgument for a directory
  // that holds other things; NotSupported for a newer format.
  // REQUIRES: `root` is absolute.
  static Result<DirLayout> Prepare(std::string root);

  const std::string& root() const { return root_; }
  std::string objects_dir() const { return root_ + "/objects"; }
  std::string tmp_dir() const { return root_ + "/tmp"; }
  std::string cas_lock_file() const { return root_ + "/locks/cas"; }

  static uint32_t ShardOf(std::string_view name);
  std::string ShardDir(uint32_t shard) const;
  std::string ObjectPath(std::string_view name) const;

 private:
  explicit DirLayout(std::string root) : root_(std::move(root)) {}
  Status CheckOrWriteMarker() const;
  Status MakeTree() const;

  std::string root_;
};

}  // namespace skerry::dirstore
