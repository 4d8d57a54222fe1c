// Partial blocks, as pure functions: where a partial entry's bytes are, and how a write into
// one changes it (docs/format.md, "Partial entries").
//
// A clone's first write into a block its parent holds copies nothing: the entry becomes
// partial, its own object holding the 4 KiB granules the clone wrote, the rest read from the
// parent's object (the base). A write always leaves every granule it touches whole in the own
// object: an edge granule it covers in part, and the own object lacks, is completed from the
// base first. Once every granule of the block is its own, the entry is an ordinary private one.
//
// Thread-safety: plain functions of their arguments.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "volume/format.h"

namespace skerry::volume {

// A run of a block's bytes that lives in one object.
struct Piece {
  std::string object;
  uint64_t off;  // in the block (and in the object)
  uint64_t len;
};

// Where the bytes [off, off+len) of block `block` with (non-hole) entry `e` are, in order: one
// piece, or runs of granules from a partial entry's own object and its base.
std::vector<Piece> Pieces(const Entry& e, uint64_t block, uint64_t off, uint64_t len);

// The granules held by a partial entry that is just starting over `base` (another volume's
// object): none, sized for a block of `block_size`.
std::shared_ptr<PartialBase> StartPartial(const Entry& base, uint32_t block_size);

// The bytes a write of [off, end) into a partial block must put in its own object: the write
// itself, extended at each end to the granule boundary when the own object (per `held`) lacks
// that edge granule. [a, off) and [end, b) are then read from the base. Never past `block_size`.
struct GranuleSpan {
  uint64_t a;
  uint64_t b;
};
GranuleSpan WholeGranules(const PartialBase& held, uint64_t off, uint64_t end, uint32_t block_size);

// `held` with the granules [a, b) touches marked as in the own object. A bitmap read from the
// store may be shorter than the block needs (missing words: no granule held); it is grown
// first.
std::shared_ptr<PartialBase> WithGranules(const PartialBase& held, uint64_t a, uint64_t b, uint32_t block_size);

// Whether every granule of a block of `block_length` bytes is in the own object.
bool HoldsWholeBlock(const PartialBase& held, uint64_t block_length);

}  // namespace skerry::volume
