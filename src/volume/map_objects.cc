#include "volume/map_objects.h"

namespace skerry::volume {
namespace {

void VisitEntry(const MapObjectVisitor& visit, uint64_t block, const Entry& e) {
  visit.block(block, e, EntryObject(e, block), e.is_partial() ? BaseObject(e, block) : std::string());
}

}  // namespace

MapSpec MapSpec::Of(const Header& h) {
  return MapSpec{h.id, h.epoch, h.size, h.block_size, h.entries_per_chunk, h.chunks};
}

MapSpec MapSpec::Of(const SnapshotRecord& r) {
  return MapSpec{r.volume, r.epoch, r.size, r.block_size, r.entries_per_chunk, r.chunks};
}

std::unique_ptr<VolumeMap> MapSpec::Open(ObjectStore& store) const {
  return std::make_unique<VolumeMap>(store, volume, epoch, blocks(), entries_per_chunk, chunks);
}

Status ForEachMapObject(ObjectStore& store, const MapSpec& spec, const MapObjectVisitor& visit) {
  for (uint64_t c = 0; c < spec.chunks.size(); c++) {
    const ChunkRef& ref = spec.chunks[c];
    if (ref.absent()) continue;
    const std::string object = ChunkObject(ref, c);
    if (visit.chunk && !visit.chunk(c, ref, object)) continue;
    if (!visit.block) continue;
    // One chunk at a time through a map of its own, so an error names the chunk.
    std::vector<ChunkRef> only(spec.chunks.size());
    only[c] = ref;
    VolumeMap m(store, spec.volume, spec.epoch, spec.blocks(), spec.entries_per_chunk, std::move(only));
    Status st = m.ForEach([&](uint64_t block, const Entry& e) { VisitEntry(visit, block, e); });
    if (st.ok()) continue;
    if (!visit.chunk_error) return st;
    visit.chunk_error(c, object, st);
  }
  return Status::OK();
}

Status ForEachMapObject(VolumeMap& map, const std::vector<ChunkRef>& table, const MapObjectVisitor& visit) {
  if (visit.chunk) {
    for (uint64_t c = 0; c < table.size(); c++)
      if (!table[c].absent()) visit.chunk(c, table[c], ChunkObject(table[c], c));
  }
  if (!visit.block) return Status::OK();
  return map.ForEach([&](uint64_t block, const Entry& e) { VisitEntry(visit, block, e); });
}

}  // namespace skerry::volume
