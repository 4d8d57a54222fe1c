#include "volume/held_writes.h"

#include <iterator>

namespace skerry::volume {

void HeldWriteOverlay::Add(uint64_t off, std::string_view data) {
  if (data.empty()) return;
  const uint64_t end = off + data.size();
  auto it = pieces_.lower_bound(off);
  // A piece starting before `off` and reaching into it keeps its head, and its tail past
  // `end` if it reaches that far.
  if (it != pieces_.begin()) {
    auto prev = std::prev(it);
    uint64_t prev_end = prev->first + prev->second.size();
    if (prev_end > off) {
      if (prev_end > end) pieces_.emplace_hint(it, end, prev->second.substr(end - prev->first));
      prev->second = prev->second.substr(0, off - prev->first);
    }
  }
  // Pieces starting inside [off, end) go, but for a tail past `end`.
  while (it != pieces_.end() && it->first < end) {
    uint64_t piece_end = it->first + it->second.size();
    if (piece_end > end) pieces_.emplace_hint(std::next(it), end, it->second.substr(end - it->first));
    it = pieces_.erase(it);
  }
  pieces_.emplace(off, data);
}

std::vector<HeldExtent> HeldWriteOverlay::Extents() const {
  std::vector<HeldExtent> out;
  out.reserve(pieces_.size());
  for (const auto& [off, data] : pieces_) out.push_back(HeldExtent{off, data});
  return out;
}

}  // namespace skerry::volume
