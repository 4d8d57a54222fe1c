// Which objects a map names: the one walker that snapshot removal, SnapshotRefs, `skerry
// check` (and garbage collection, next) share, so that the rules of what a map entry names
// (a block's own object, a partial entry's base, a content-addressed object, the chunk
// objects themselves) live in one place.
//
// MapSpec is a map as a header or snapshot record describes it (frozen: what the store
// holds). ForEachMapObject walks it chunk by chunk, each through a map of its own, so a chunk
// that cannot be read is reported as that chunk and the walk goes on.
//
// Thread-safety: plain functions; the store is called from the caller's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "skerry/object_store.h"
#include "volume/format.h"
#include "volume/volume_map.h"

namespace skerry::volume {

struct MapSpec {
  VolumeId volume;
  uint64_t epoch = 0;
  uint64_t size = 0;
  uint32_t block_size = 0;
  uint32_t entries_per_chunk = 0;
  std::vector<ChunkRef> chunks;

  static MapSpec Of(const Header& h);
  static MapSpec Of(const SnapshotRecord& r);
  uint64_t blocks() const { return (size + block_size - 1) / block_size; }
  // A map over the store's chunks (loaded on first use; never written: frozen).
  std::unique_ptr<VolumeMap> Open(ObjectStore& store) const;
};

struct MapObjectVisitor {
  // Chunk `c` of the table, object `object`. Returns whether to walk its entries (false: e.g.
  // seen already through another map that shares it). Null: walk every chunk.
  std::function<bool(uint64_t c, const ChunkRef& ref, const std::string& object)> chunk;
  // A non-hole entry: the object it names, and for a partial entry the base it reads the rest
  // of the block from ("" otherwise). Null: chunks only.
  std::function<void(uint64_t block, const Entry& e, const std::string& object, const std::string& base)> block;
  // A chunk whose entries could not be read. Null: the walk stops with that error.
  std::function<void(uint64_t c, const std::string& object, const Status& error)> chunk_error;
};

// Walks the map `spec` describes.
Status ForEachMapObject(ObjectStore& store, const MapSpec& spec, const MapObjectVisitor& visit);

// Walks an open map, with what it holds in memory (a head's entries not yet flushed): every
// chunk of `table` (whatever `chunk` returns), then every entry.
Status ForEachMapObject(VolumeMap& map, const std::vector<ChunkRef>& table, const MapObjectVisitor& visit);

}  // namespace skerry::volume
