// The metadata objects of docs/format.md as C++ values, with their encoders and decoders.
//
// Decoders check magic, version, lengths and CRC32C and return Corruption naming the object;
// they never trust a count read from the input before checking it against the bytes present.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "skerry/status.h"
#include "util/sha256.h"
#include "volume/volume_id.h"

namespace skerry::volume {

inline constexpr uint32_t kFormatVersion = 1;
// Map chunks holding partial entries are written as version 2 (docs/format.md); others as 1.
inline constexpr uint32_t kChunkVersionPartial = 2;
inline constexpr uint32_t kEntriesPerChunk = 4096;
inline constexpr size_t kEntrySize = 40;
// A partial entry says which granules of this size its own object holds.
inline constexpr uint32_t kGranuleSize = 4096;

// What a partial entry adds to a private one: the base it reads the rest of the block from
// (an object of another volume: the private entry the partial one replaced) and which
// granules the own object holds. Immutable once shared: a change makes a new one.
struct PartialBase {
  VolumeId owner;
  uint64_t epoch = 0;
  std::vector<uint64_t> written;  // bit g (word g/64, bit g%64): granule g is in the own object

  bool Has(uint64_t g) const { return g / 64 < written.size() && (written[g / 64] >> (g % 64)) & 1; }
  // Whether every granule of [first, end) is in the own object.
  bool HasAll(uint64_t first, uint64_t end) const {
    for (uint64_t g = first; g < end; g++)
      if (!Has(g)) return false;
    return true;
  }
  bool operator==(const PartialBase&) const = default;
};

// One map entry: where block i's data is.
struct Entry {
  enum class Kind : uint8_t { kHole = 0, kPrivate = 1, kContent = 2, kPartial = 3 };
  Kind kind = Kind::kHole;
  VolumeId owner;        // kPrivate, kPartial: the volume whose object this is
  uint64_t epoch = 0;    // kPrivate, kPartial: the epoch it was written at
  Sha256Digest digest{}; // kContent
  // kPartial: the granules not in the own object read from the base object
  // v.<base owner>.b.<base epoch>.<block>. A copy of an entry shares it.
  std::shared_ptr<const PartialBase> partial;

  static Entry Private(const VolumeId& owner, uint64_t epoch) {
    Entry e;
    e.kind = Kind::kPrivate;
    e.owner = owner;
    e.epoch = epoch;
    return e;
  }
  static Entry Partial(const VolumeId& owner, uint64_t epoch, std::shared_ptr<const PartialBase> base) {
    Entry e = Private(owner, epoch);
    e.kind = Kind::kPartial;
    e.partial = std::move(base);
    return e;
  }
  bool is_hole() const { return kind == Kind::kHole; }
  bool is_partial() const { return kind == Kind::kPartial; }
  // Private or partial: names an object v.<owner>.b.<epoch>.<block> of its own.
  bool has_own_object() const { return kind == Kind::kPrivate || kind == Kind::kPartial; }
  // Names the same own object (private or partial) as `o`.
  bool SameObject(const Entry& o) const {
    return has_own_object() && o.has_own_object() && owner == o.owner && epoch == o.epoch;
  }
  bool operator==(const Entry& o) const {
    if (kind != o.kind) return false;
    if (kind == Kind::kPrivate) return owner == o.owner && epoch == o.epoch;
    if (kind == Kind::kPartial) return owner == o.owner && epoch == o.epoch && *partial == *o.partial;
    if (kind == Kind::kContent) return digest == o.digest;
    return true;
  }
};

// Where a chunk of the map lives; owner zero = absent (all holes).
struct ChunkRef {
  VolumeId owner;
  uint64_t epoch = 0;
  bool absent() const { return owner.IsZero(); }
  bool operator==(const ChunkRef&) const = default;
};

struct Chunk {
  VolumeId owner;
  uint64_t epoch = 0;
  uint64_t index = 0;
  std::vector<Entry> entries;
};

struct SnapshotEntry {
  uint64_t id = 0;
  uint64_t epoch = 0;
  uint64_t size = 0;
  int64_t created_unix_ms = 0;
  std::string name;
  std::vector<VolumeId> children;
};

struct Header {
  VolumeId id;
  uint64_t size = 0;
  uint32_t block_size = 0;
  uint32_t entries_per_chunk = kEntriesPerChunk;
  uint64_t epoch = 1;
  uint64_t flags = 0;
  uint64_t generation = 0;
  int64_t created_unix_ms = 0;
  VolumeId parent_id;         // zero: no parent
  uint64_t parent_snap_id = 0;
  uint64_t next_snap_id = 1;
  std::vector<SnapshotEntry> snapshots;
  std::vector<ChunkRef> chunks;

  uint64_t block_count() const { return (size + block_size - 1) / block_size; }
  SnapshotEntry* FindSnapshot(std::string_view name);
  const SnapshotEntry* FindSnapshot(std::string_view name) const;
  const SnapshotEntry* FindSnapshotById(uint64_t id) const;
};

struct SnapshotRecord {
  VolumeId volume;
  uint64_t id = 0;
  uint64_t epoch = 0;
  uint64_t size = 0;
  uint32_t block_size = 0;
  uint32_t entries_per_chunk = kEntriesPerChunk;
  std::vector<ChunkRef> chunks;
};

struct DirectoryEntry {
  std::string name;
  VolumeId id;
};
struct Directory {
  std::vector<DirectoryEntry> entries;  // sorted by name
  const DirectoryEntry* Find(std::string_view name) const;
  const DirectoryEntry* FindId(const VolumeId& id) const;
};

// Number of chunks a map of `blocks` blocks needs.
inline uint64_t ChunkCount(uint64_t blocks, uint32_t per_chunk) { return (blocks + per_chunk - 1) / per_chunk; }

std::string EncodeHeader(const Header& h);
Result<Header> DecodeHeader(std::string_view data, std::string_view object_name);
std::string EncodeChunk(const Chunk& c);
Result<Chunk> DecodeChunk(std::string_view data, std::string_view object_name);
std::string EncodeSnapshotRecord(const SnapshotRecord& r);
Result<SnapshotRecord> DecodeSnapshotRecord(std::string_view data, std::string_view object_name);
std::string EncodeDirectory(const Directory& d);
Result<Directory> DecodeDirectory(std::string_view data, std::string_view object_name);

// Object names (docs/format.md, "Objects").
inline constexpr std::string_view kDirectoryObject = "skerry.directory";
std::string HeaderObject(const VolumeId& id);
std::string LockObject(const VolumeId& id);
// A writer-to-be's request that the lock holder hand the volume over (handoff_channel.h).
std::string HandoffObject(const VolumeId& id);
std::string SnapshotObject(const VolumeId& id, uint64_t snap_id);
std::string ChunkObject(const VolumeId& owner, uint64_t epoch, uint64_t chunk);
std::string ChunkObject(const ChunkRef& ref, uint64_t chunk);
std::string BlockObject(const VolumeId& owner, uint64_t epoch, uint64_t block);
std::string ContentObject(const Sha256Digest& digest);
// The object holding block `block` as `e` says (a partial entry's own object); empty for a hole.
std::string EntryObject(const Entry& e, uint64_t block);
// The object a partial entry reads its other granules from.
std::string BaseObject(const Entry& e, uint64_t block);
// Prefix of every object a volume owns: "v.<id>."
std::string VolumePrefix(const VolumeId& id);

}  // namespace skerry::volume
