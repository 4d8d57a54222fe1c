#include "volume/volume_map.h"

#include <fmt/format.h>

namespace skerry::volume {

VolumeMap::VolumeMap(ObjectStore& store, VolumeId self, uint64_t epoch, uint64_t blocks,
                     uint32_t per_chunk, std::vector<ChunkRef> chunks)
    : store_(store), self_(self), per_chunk_(per_chunk), epoch_(epoch), blocks_(blocks),
      table_(std::move(chunks)) {
  loaded_.resize(table_.size());
}

uint32_t VolumeMap::EntriesIn(uint64_t chunk) const {
  uint64_t first = chunk * per_chunk_;
  return static_cast<uint32_t>(std::min<uint64_t>(per_chunk_, blocks_ - first));
}

Result<VolumeMap::LoadedChunk*> VolumeMap::Load(uint64_t c) {
  if (loaded_[c]) return loaded_[c].get();
  auto chunk = std::make_unique<LoadedChunk>();
  uint32_t want = EntriesIn(c);
  if (!table_[c].absent()) {
    std::string name = ChunkObject(table_[c], c);
    Result<std::string> raw = store_.Get(name);
    if (!raw.ok()) {
      if (raw.status().IsNotFound())
        return Status::Corruption(fmt::format("map chunk {} is missing", name));
      return raw.status();
    }
    SKERRY_ASSIGN_OR_RETURN(Chunk decoded, DecodeChunk(*raw, name));
    if (decoded.index != c || decoded.owner != table_[c].owner || decoded.epoch != table_[c].epoch)
      return Status::Corruption(fmt::format("{}: names chunk {} of another volume or epoch", name, decoded.index));
    chunk->entries = std::move(decoded.entries);
  }
  // A chunk frozen by a smaller snapshot has fewer entries: the rest are holes. One with more
  // entries than the size needs is the old last chunk of a shrink that a crash cut short
  // after its header update: the extra entries are past the end and mean nothing. It is
  // written again at the next flush, so no snapshot (and no larger clone of one) names it.
  if (chunk->entries.size() > want) chunk->dirty = true;
  chunk->entries.resize(want);
  loaded_[c] = std::move(chunk);
  return loaded_[c].get();
}

Result<Entry> VolumeMap::Get(uint64_t block) {
  MutexLock lock(&mu_);
  if (block >= blocks_) return Status::InvalidArgument(fmt::format("block {} beyond the map", block));
  SKERRY_ASSIGN_OR_RETURN(LoadedChunk * chunk, Load(block / per_chunk_));
  return chunk->entries[block % per_chunk_];
}

std::optional<Entry> VolumeMap::GetIfLoaded(uint64_t block) {
  MutexLock lock(&mu_);
  uint64_t c = block / per_chunk_;
  if (block >= blocks_ || c >= loaded_.size() || !loaded_[c]) return std::nullopt;
  return loaded_[c]->entries[block % per_chunk_];
}

Status VolumeMap::Set(uint64_t block, const Entry& entry) {
  MutexLock lock(&mu_);
  if (block >= blocks_) return Status::InvalidArgument(fmt::format("block {} beyond the map", block));
  SKERRY_ASSIGN_OR_RETURN(LoadedChunk * chunk, Load(block / per_chunk_));
  chunk->entries[block % per_chunk_] = entry;
  chunk->dirty = true;
  return Status::OK();
}

Status VolumeMap::Persist(bool* table_changed, std::vector<std::pair<uint64_t, ChunkRef>>* replaced,
                          const std::function<Status()>& before_write) {
  *table_changed = false;
  struct Pending {
    uint64_t index;
    std::string bytes;
    ChunkRef old_ref;
  };
  std::vector<Pending> pending;
  ChunkRef mine{self_, 0};
  {
    MutexLock lock(&mu_);
    mine.epoch = epoch_;
    for (uint64_t c = 0; c < loaded_.size(); c++) {
      if (!loaded_[c] || !loaded_[c]->dirty) continue;
      Chunk out{self_, epoch_, c, loaded_[c]->entries};
      pending.push_back({c, EncodeChunk(out), table_[c]});
      loaded_[c]->dirty = false;
    }
  }
  // Chunks from `from` on were not written: dirty again, so the next flush writes them.
  auto still_dirty = [&](size_t from) {
    MutexLock lock(&mu_);
    for (size_t j = from; j < pending.size(); j++)
      if (pending[j].index < loaded_.size() && loaded_[pending[j].index]) loaded_[pending[j].index]->dirty = true;
  };
  if (Status st = before_write(); !st.ok()) {
    still_dirty(0);
    return st;
  }
  Status result;
  for (size_t i = 0; i < pending.size(); i++) {
    Pending& p = pending[i];
    Status st = store_.Put(ChunkObject(mine, p.index), p.bytes);
    if (!st.ok()) {
      still_dirty(i);
      result = st;
      break;
    }
    MutexLock lock(&mu_);
    if (p.index < table_.size() && !(table_[p.index] == mine)) {
      if (table_[p.index].owner == self_) replaced->push_back({p.index, table_[p.index]});
      table_[p.index] = mine;
      *table_changed = true;
    }
  }
  return result;
}

std::vector<ChunkRef> VolumeMap::chunk_table() const {
  MutexLock lock(&mu_);
  return table_;
}
uint64_t VolumeMap::blocks() const {
  MutexLock lock(&mu_);
  return blocks_;
}
uint64_t VolumeMap::epoch() const {
  MutexLock lock(&mu_);
  return epoch_;
}
void VolumeMap::SetEpoch(uint64_t epoch) {
  MutexLock lock(&mu_);
  epoch_ = epoch;
}

Status VolumeMap::Resize(uint64_t blocks, std::vector<std::pair<uint64_t, Entry>>* dropped,
                         std::vector<std::pair<uint64_t, ChunkRef>>* dropped_chunks) {
  MutexLock lock(&mu_);
  uint64_t old_blocks = blocks_;
  uint64_t new_chunks = ChunkCount(blocks, per_chunk_);
  // Everything that can fail first: the chunks read below, the new last one included, are
  // loaded before the table changes, so a failed load leaves the map as it was. The old last
  // one too, at the old size: entries it has past that size are dropped before growing.
  if (new_chunks > 0 && new_chunks - 1 < table_.size()) SKERRY_RETURN_IF_ERROR(Load(new_chunks - 1).status());
  if (uint64_t old_chunks = ChunkCount(old_blocks, per_chunk_); old_chunks > 0 && old_chunks - 1 < table_.size())
    SKERRY_RETURN_IF_ERROR(Load(old_chunks - 1).status());
  if (blocks < old_blocks) {
    // Collect what falls off the end, chunk by chunk.
    for (uint64_t c = blocks / per_chunk_; c < table_.size(); c++) {
      SKERRY_ASSIGN_OR_RETURN(LoadedChunk * chunk, Load(c));
      for (uint64_t i = 0; i < chunk->entries.size(); i++) {
        uint64_t b = c * per_chunk_ + i;
        if (b >= blocks && !chunk->entries[i].is_hole()) dropped->push_back({b, chunk->entries[i]});
      }
      if (c >= new_chunks && table_[c].owner == self_) dropped_chunks->push_back({c, table_[c]});
    }
  }
  table_.resize(new_chunks);
  loaded_.resize(new_chunks);
  blocks_ = blocks;
  // Grown past the old last chunk: if it is loaded, it holds only the entries of the old
  // size; give it the rest (holes) before anything indexes them. (The new last chunk is
  // handled below.)
  uint64_t old_chunks = ChunkCount(old_blocks, per_chunk_);
  if (old_chunks > 0 && old_chunks < new_chunks && loaded_[old_chunks - 1])
    loaded_[old_chunks - 1]->entries.resize(EntriesIn(old_chunks - 1));
  if (new_chunks > 0) {
    uint64_t last = new_chunks - 1;
    // The last chunk's entry count follows the size: rewrite it at our epoch.
    SKERRY_ASSIGN_OR_RETURN(LoadedChunk * chunk, Load(last));
    uint32_t want = EntriesIn(last);
    if (chunk->entries.size() != want) {
      chunk->entries.resize(want);
      chunk->dirty = true;
    }
  }
  return Status::OK();
}

Status VolumeMap::ForEach(const std::function<void(uint64_t, const Entry&)>& fn) {
  MutexLock lock(&mu_);
  for (uint64_t c = 0; c < table_.size(); c++) {
    SKERRY_ASSIGN_OR_RETURN(LoadedChunk * chunk, Load(c));
    for (uint64_t i = 0; i < chunk->entries.size(); i++)
      if (!chunk->entries[i].is_hole()) fn(c * per_chunk_ + i, chunk->entries[i]);
  }
  return Status::OK();
}

}  // namespace skerry::volume
