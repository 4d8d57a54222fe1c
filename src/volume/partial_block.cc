#include "volume/partial_block.h"

#include <algorithm>

namespace skerry::volume {
namespace {
constexpr uint64_t G = kGranuleSize;
size_t WordsFor(uint32_t block_size) { return (block_size / G + 63) / 64; }
}  // namespace

std::vector<Piece> Pieces(const Entry& e, uint64_t block, uint64_t off, uint64_t len) {
  std::vector<Piece> out;
  if (!e.is_partial()) {
    out.push_back(Piece{EntryObject(e, block), off, len});  // moved in: no copy of the name
    return out;
  }
  // Runs of granules that the own object holds, or the base, clipped to [off, off+len).
  const std::string own = EntryObject(e, block), base = BaseObject(e, block);
  const uint64_t end = off + len;
  for (uint64_t pos = off; pos < end;) {
    const bool mine = e.partial->Has(pos / G);
    uint64_t next = (pos / G + 1) * G;
    while (next < end && e.partial->Has(next / G) == mine) next += G;
    next = std::min(next, end);
    out.push_back(Piece{mine ? own : base, pos, next - pos});
    pos = next;
  }
  return out;
}

std::shared_ptr<PartialBase> StartPartial(const Entry& base, uint32_t block_size) {
  auto held = std::make_shared<PartialBase>();
  held->owner = base.owner;
  held->epoch = base.epoch;
  held->written.assign(WordsFor(block_size), 0);
  return held;
}

GranuleSpan WholeGranules(const PartialBase& held, uint64_t off, uint64_t end, uint32_t block_size) {
  GranuleSpan s{off, end};
  if (off % G != 0 && !held.Has(off / G)) s.a = off / G * G;
  if (end % G != 0 && !held.Has(end / G)) s.b = std::min<uint64_t>((end / G + 1) * G, block_size);
  return s;
}

std::shared_ptr<PartialBase> WithGranules(const PartialBase& held, uint64_t a, uint64_t b, uint32_t block_size) {
  auto next = std::make_shared<PartialBase>(held);
  next->written.resize(std::max(next->written.size(), WordsFor(block_size)));
  for (uint64_t g = a / G; g <= (b - 1) / G; g++) next->written[g / 64] |= uint64_t{1} << (g % 64);
  return next;
}

bool HoldsWholeBlock(const PartialBase& held, uint64_t block_length) {
  return held.HasAll(0, (block_length + G - 1) / G);
}

}  // namespace skerry::volume
