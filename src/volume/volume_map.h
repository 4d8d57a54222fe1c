// VolumeMap: the block → object map of one open volume (or snapshot), in memory.
//
// Chunks are loaded from the store on first use and kept. Set() marks a chunk dirty;
// Persist() writes every dirty chunk as this volume's chunk object at the current epoch
// (`v.<self>.map.<epoch>.<i>`) and points the chunk table at it. Chunks of older epochs
// or of other volumes (a snapshot's, a parent's) are never written: they are frozen.
//
// Thread-safety: all methods may be called concurrently; Persist() calls must be
// serialized by the caller (Volume does it under its flush mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "skerry/object_store.h"
#include "util/mutex.h"
#include "volume/format.h"

namespace skerry::volume {

class VolumeMap {
 public:
  VolumeMap(ObjectStore& store, VolumeId self, uint64_t epoch, uint64_t blocks,
            uint32_t entries_per_chunk, std::vector<ChunkRef> chunks);

  Result<Entry> Get(uint64_t block);
  // The entry if its chunk is in memory already; never touches the store (nullopt else).
  std::optional<Entry> GetIfLoaded(uint64_t block);
  Status Set(uint64_t block, const Entry& entry);

  // Writes dirty chunks; *table_changed tells whether the chunk table now names new objects
  // (so the header must be rewritten). The chunks are encoded first, then
  // `before_write` runs (the volume syncs the objects they name there), then they are
  // written; if it fails, nothing is written and the chunks stay dirty. Encoding first is
  // what makes the sync cover every object the written chunks name: an entry is set only
  // after its object was marked dirty, so a set that the encoding saw was preceded by a mark
  // that the sync's later look at the dirty set sees. Chunks of this volume (of older
  // epochs) that the table named before and no longer does are added to `replaced`.
  Status Persist(bool* table_changed, std::vector<std::pair<uint64_t, ChunkRef>>* replaced,
                 const std::function<Status()>& before_write);

  std::vector<ChunkRef> chunk_table() const;
  uint64_t blocks() const;
  uint64_t epoch() const;
  // After a snapshot: chunks of the old epoch become frozen.
  void SetEpoch(uint64_t epoch);
  // Changes the number of blocks: new blocks are holes; dropped entries are returned through
  // `dropped` (block, entry) so the caller can release their objects. Chunks of this volume
  // (of any epoch) now beyond the end are returned in `dropped_chunks` (index, reference).
  Status Resize(uint64_t blocks, std::vector<std::pair<uint64_t, Entry>>* dropped,
                std::vector<std::pair<uint64_t, ChunkRef>>* dropped_chunks);

  // Calls fn(block, entry) for every non-hole entry, in order (loads every chunk).
  Status ForEach(const std::function<void(uint64_t, const Entry&)>& fn);

 private:
  struct LoadedChunk {
    std::vector<Entry> entries;
    bool dirty = false;
  };
  uint32_t EntriesIn(uint64_t chunk) const REQUIRES(mu_);
  // Loads chunk `c` if needed.
  Result<LoadedChunk*> Load(uint64_t c) REQUIRES(mu_);

  ObjectStore& store_;
  const VolumeId self_;
  const uint32_t per_chunk_;
  mutable Mutex mu_;
  uint64_t epoch_ GUARDED_BY(mu_);
  uint64_t blocks_ GUARDED_BY(mu_);
  std::vector<ChunkRef> table_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<LoadedChunk>> loaded_ GUARDED_BY(mu_);
};

}  // namespace skerry::volume
