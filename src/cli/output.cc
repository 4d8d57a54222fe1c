#include "cli/output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include "util/sizes.h"
#include "util/steady_ms.h"

namespace skerry::cli {

std::string FormatTime(int64_t unix_ms) {
  std::time_t t = unix_ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json ToJson(const SnapshotInfo& s) {
  return {{"id", s.id}, {"name", s.name}, {"size", s.size}, {"created", FormatTime(s.created_unix_ms)},
          {"children", s.children}};
}

nlohmann::json ToJson(const VolumeInfo& v) {
  nlohmann::json j = {{"name", v.name},
                      {"id", v.id},
                      {"size", v.size},
                      {"block_size", v.block_size},
                      {"epoch", v.epoch},
                      {"created", FormatTime(v.created_unix_ms)},
                      {"parent", v.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.parent)}};
  nlohmann::json snaps = nlohmann::json::array();
  for (auto& s : v.snapshots) snaps.push_back(ToJson(s));
  j["snapshots"] = snaps;
  if (v.allocated_blocks) {
    j["allocated_blocks"] = *v.allocated_blocks;
    j["allocated_bytes"] = std::min<uint64_t>(*v.allocated_blocks * v.block_size, v.size);
  }
  if (v.snapshot) j["snapshot"] = ToJson(*v.snapshot);
  return j;
}

Progress::Progress(std::string what, uint64_t total, bool bytes)
    : what_(std::move(what)), total_(total), bytes_(bytes), enabled_(isatty(STDERR_FILENO)), start_ms_(SteadyMs()) {}

void Progress::Update(uint64_t done) {
  if (!enabled_) return;
  int64_t now = SteadyMs();
  if (now - last_ms_ < 200 && done < total_) return;  // redraw at most 5 times a second
  last_ms_ = now;
  if (!bytes_) {
    fmt::print(stderr, "\r{}: {} / {} ({}%)   ", what_, done, total_, total_ ? done * 100 / total_ : 100);
    std::fflush(stderr);
    return;
  }
  double secs = std::max<double>(0.001, (now - start_ms_) / 1000.0);
  std::string rate = FormatSize(static_cast<uint64_t>(done / secs));
  if (total_)
    fmt::print(stderr, "\r{}: {} / {} ({}%) {}/s   ", what_, FormatSize(done), FormatSize(total_), done * 100 / total_, rate);
  else
    fmt::print(stderr, "\r{}: {} {}/s   ", what_, FormatSize(done), rate);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (enabled_) fmt::print(stderr, "\n");
}

}  // namespace skerry::cli
