// How the CLI prints: human text by default, JSON with --json, progress on a terminal.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "skerry/volume.h"

namespace skerry::cli {

nlohmann::json ToJson(const VolumeInfo& info);
nlohmann::json ToJson(const SnapshotInfo& snap);
std::string FormatTime(int64_t unix_ms);

// A progress line on stderr, redrawn in place; silent when stderr is not a terminal.
class Progress {
 public:
  // `bytes`: amounts are bytes (shown with units and a rate); else plain counts.
  Progress(std::string what, uint64_t total, bool bytes = true);
  void Update(uint64_t done);
  void Finish();

 private:
  std::string what_;
  uint64_t total_;
  bool bytes_;
  bool enabled_;
  int64_t start_ms_;
  int64_t last_ms_ = 0;
};

}  // namespace skerry::cli
