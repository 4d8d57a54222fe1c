// The held writes of a deferred copy-up (open_volume.h), coalesced for applying: the bytes
// they leave in the block, as non-overlapping extents in offset order. A later write wins
// where writes overlap, as if they had been applied one by one in order.
//
// Why: on a store where each write is a network round trip (RADOS), applying a block's
// hundreds of held 4 KiB writes one after another took seconds while writers kept adding
// more; the extents do not overlap, so they can all be in flight at once, and a range
// written many times is written once.
#pragma once

#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

namespace skerry::volume {

struct HeldExtent {
  uint64_t off;
  std::string_view data;  // points into the held write it came from
};

class HeldWriteOverlay {
 public:
  // Lays `data` at `off` over what is there. The bytes are not copied: `data` must stay
  // valid while this overlay or its extents are used.
  void Add(uint64_t off, std::string_view data);
  // The extents in offset order; adjacent ones are not merged (that would copy).
  std::vector<HeldExtent> Extents() const;

 private:
  std::map<uint64_t, std::string_view> pieces_;  // offset -> bytes; never overlapping
};

}  // namespace skerry::volume
