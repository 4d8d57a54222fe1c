#include "volume/format.h"

#include <fmt/format.h>

#include <algorithm>

#include "skerry/volume.h"
#include "util/crc32c.h"
#include "volume/codec.h"

namespace skerry::volume {
namespace {

constexpr std::string_view kHeaderMagic = "SKRYVOL1";
constexpr std::string_view kChunkMagic = "SKRYMAP1";
constexpr std::string_view kSnapMagic = "SKRYSNP1";
constexpr std::string_view kDirMagic = "SKRYDIR1";
constexpr size_t kMaxNameLength = 100;

void Seal(ByteWriter& w) {
  uint32_t crc = Crc32c(w.data());
  w.U32(crc);
}

Status Bad(std::string_view object, std::string_view what) {
  return Status::Corruption(fmt::format("{}: {}", object, what));
}

// Checks the trailing CRC and the magic/version (at most `max_version`, stored in *version if
// given), and returns a reader positioned after them.
Result<ByteReader> Open(std::string_view data, std::string_view magic, std::string_view object,
                        uint32_t max_version = kFormatVersion, uint32_t* version_out = nullptr) {
  if (data.size() < magic.size() + 4 + 4) return Bad(object, "truncated");
  std::string_view body = data.substr(0, data.size() - 4);
  ByteReader tail(data.substr(data.size() - 4));
  uint32_t stored = tail.U32();
  if (data.substr(0, magic.size()) != magic) return Bad(object, "bad magic (not a skerry object of this kind)");
  if (Crc32c(body) != stored) return Bad(object, "checksum mismatch");
  ByteReader r(body);
  r.Skip(magic.size());
  uint32_t version = r.U32();
  if (version == 0) return Bad(object, "format version 0");
  if (version > max_version)
    return Status::NotSupported(fmt::format("{}: written by a newer skerry (format {})", object, version));
  if (version_out) *version_out = version;
  return r;
}

void PutChunkRefs(ByteWriter& w, const std::vector<ChunkRef>& refs) {
  w.U32(static_cast<uint32_t>(refs.size()));
  for (const ChunkRef& c : refs) {
    w.Bytes(c.owner.bytes.data(), 16);
    w.U64(c.epoch);
  }
}

bool GetChunkRefs(ByteReader& r, std::vector<ChunkRef>* refs) {
  uint32_t n = r.U32();
  if (!r.ok() || r.remaining() / 24 < n) return false;
  refs->resize(n);
  for (ChunkRef& c : *refs) {
    r.Bytes(c.owner.bytes.data(), 16);
    c.epoch = r.U64();
  }
  return r.ok();
}

bool ValidBlockSize(uint32_t bs) { return bs >= (64u << 10) && bs <= (64u << 20) && (bs & (bs - 1)) == 0; }

}  // namespace

SnapshotEntry* Header::FindSnapshot(std::string_view name) {
  for (auto& s : snapshots)
    if (s.name == name) return &s;
  return nullptr;
}
const SnapshotEntry* Header::FindSnapshot(std::string_view name) const {
  return const_cast<Header*>(this)->FindSnapshot(name);
}
const SnapshotEntry* Header::FindSnapshotById(uint64_t id) const {
  for (auto& s : snapshots)
    if (s.id == id) return &s;
  return nullptr;
}

const DirectoryEntry* Directory::Find(std::string_view name) const {
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [](const DirectoryEntry& e, std::string_view n) { return e.name < n; });
  return (it != entries.end() && it->name == name) ? &*it : nullptr;
}
const DirectoryEntry* Directory::FindId(const VolumeId& id) const {
  for (auto& e : entries)
    if (e.id == id) return &e;
  return nullptr;
}

std::string EncodeHeader(const Header& h) {
  ByteWriter w;
  w.Bytes(kHeaderMagic.data(), kHeaderMagic.size());
  w.U32(kFormatVersion);
  w.U32(0);
  w.Bytes(h.id.bytes.data(), 16);
  w.U64(h.size);
  w.U32(h.block_size);
  w.U32(h.entries_per_chunk);
  w.U64(h.epoch);
  w.U64(h.flags);
  w.U64(h.generation);
  w.I64(h.created_unix_ms);
  w.Bytes(h.parent_id.bytes.data(), 16);
  w.U64(h.parent_snap_id);
  w.U64(h.next_snap_id);
  w.U32(static_cast<uint32_t>(h.snapshots.size()));
  for (const SnapshotEntry& s : h.snapshots) {
    w.U64(s.id);
    w.U64(s.epoch);
    w.U64(s.size);
    w.I64(s.created_unix_ms);
    w.U16(static_cast<uint16_t>(s.name.size()));
    w.Bytes(s.name.data(), s.name.size());
    w.U32(static_cast<uint32_t>(s.children.size()));
    for (const VolumeId& c : s.children) w.Bytes(c.bytes.data(), 16);
  }
  PutChunkRefs(w, h.chunks);
  Seal(w);
  return std::move(w.data());
}

Result<Header> DecodeHeader(std::string_view data, std::string_view object) {
  SKERRY_ASSIGN_OR_RETURN(ByteReader r, Open(data, kHeaderMagic, object));
  Header h;
  r.U32();  // reserved
  r.Bytes(h.id.bytes.data(), 16);
  h.size = r.U64();
  h.block_size = r.U32();
  h.entries_per_chunk = r.U32();
  h.epoch = r.U64();
  h.flags = r.U64();
  h.generation = r.U64();
  h.created_unix_ms = r.I64();
  r.Bytes(h.parent_id.bytes.data(), 16);
  h.parent_snap_id = r.U64();
  h.next_snap_id = r.U64();
  uint32_t nsnaps = r.U32();
  if (!r.ok() || r.remaining() / 38 < nsnaps) return Bad(object, "truncated snapshot list");
  h.snapshots.resize(nsnaps);
  for (SnapshotEntry& s : h.snapshots) {
    s.id = r.U64();
    s.epoch = r.U64();
    s.size = r.U64();
    s.created_unix_ms = r.I64();
    uint16_t len = r.U16();
    s.name = std::string(r.View(len));
    uint32_t nchildren = r.U32();
    if (!r.ok() || r.remaining() / 16 < nchildren) return Bad(object, "truncated snapshot children");
    s.children.resize(nchildren);
    for (VolumeId& c : s.children) r.Bytes(c.bytes.data(), 16);
    if (!r.ok()) return Bad(object, "truncated snapshot");
    if (s.name.empty() || s.name.size() > kMaxNameLength) return Bad(object, "bad snapshot name length");
  }
  if (!GetChunkRefs(r, &h.chunks)) return Bad(object, "truncated chunk table");
  if (r.remaining() != 0) return Bad(object, "trailing bytes");
  if (!ValidBlockSize(h.block_size)) return Bad(object, fmt::format("bad block size {}", h.block_size));
  if (h.entries_per_chunk == 0 || h.entries_per_chunk > (1u << 20)) return Bad(object, "bad entries per chunk");
  // A size past the maximum could wrap the block count (an empty chunk table would match).
  if (!ValidateVolumeSize(h.size).ok()) return Bad(object, fmt::format("bad size {}", h.size));
  for (const SnapshotEntry& s : h.snapshots)
    if (!ValidateVolumeSize(s.size).ok()) return Bad(object, fmt::format("bad size {} of snapshot '{}'", s.size, s.name));
  if (h.epoch == 0) return Bad(object, "epoch 0");
  if (h.flags != 0) return Status::NotSupported(fmt::format("{}: unknown flags {:#x}", object, h.flags));
  if (h.chunks.size() != ChunkCount(h.block_count(), h.entries_per_chunk))
    return Bad(object, "chunk table does not match the size");
  return h;
}

std::string EncodeChunk(const Chunk& c) {
  uint32_t partials = 0;
  for (const Entry& e : c.entries) partials += e.is_partial();
  ByteWriter w;
  w.Reserve(kChunkMagic.size() + 48 + c.entries.size() * kEntrySize + 8 + partials * 200);
  w.Bytes(kChunkMagic.data(), kChunkMagic.size());
  // Version 1 readers know nothing of partial entries: only a chunk that has some says 2.
  w.U32(partials > 0 ? kChunkVersionPartial : kFormatVersion);
  w.U32(static_cast<uint32_t>(c.entries.size()));
  w.Bytes(c.owner.bytes.data(), 16);
  w.U64(c.epoch);
  w.U64(c.index);
  for (const Entry& e : c.entries) {
    w.U8(static_cast<uint8_t>(e.kind));
    w.Zeros(7);
    switch (e.kind) {
      case Entry::Kind::kHole: w.Zeros(32); break;
      case Entry::Kind::kPrivate:
      case Entry::Kind::kPartial:
        w.Bytes(e.owner.bytes.data(), 16);
        w.U64(e.epoch);
        w.Zeros(8);
        break;
      case Entry::Kind::kContent: w.Bytes(e.digest.data(), 32); break;
    }
  }
  if (partials > 0) {
    // The partial entries' bases and granule bitmaps, in entry order.
    w.U32(partials);
    for (uint32_t i = 0; i < c.entries.size(); i++) {
      const Entry& e = c.entries[i];
      if (!e.is_partial()) continue;
      w.U32(i);
      w.Bytes(e.partial->owner.bytes.data(), 16);
      w.U64(e.partial->epoch);
      w.U32(static_cast<uint32_t>(e.partial->written.size()));
      for (uint64_t word : e.partial->written) w.U64(word);
    }
  }
  Seal(w);
  return std::move(w.data());
}

Result<Chunk> DecodeChunk(std::string_view data, std::string_view object) {
  uint32_t version = 0;
  SKERRY_ASSIGN_OR_RETURN(ByteReader r, Open(data, kChunkMagic, object, kChunkVersionPartial, &version));
  Chunk c;
  uint32_t n = r.U32();
  r.Bytes(c.owner.bytes.data(), 16);
  c.epoch = r.U64();
  c.index = r.U64();
  const uint64_t entry_bytes = static_cast<uint64_t>(n) * kEntrySize;
  if (!r.ok() || (version == 1 ? r.remaining() != entry_bytes : r.remaining() < entry_bytes + 4))
    return Bad(object, "entry count does not match length");
  c.entries.resize(n);
  uint32_t partial_entries = 0;
  for (Entry& e : c.entries) {
    uint8_t kind = r.U8();
    r.Skip(7);
    switch (kind) {
      case 0: e.kind = Entry::Kind::kHole; r.Skip(32); break;
      case 1:
      case 3:
        if (kind == 3 && version < kChunkVersionPartial) return Bad(object, "partial entry in a version 1 chunk");
        e.kind = kind == 1 ? Entry::Kind::kPrivate : Entry::Kind::kPartial;
        partial_entries += kind == 3;
        r.Bytes(e.owner.bytes.data(), 16);
        e.epoch = r.U64();
        r.Skip(8);
        if (e.owner.IsZero() || e.epoch == 0) return Bad(object, "private entry without owner or epoch");
        break;
      case 2: e.kind = Entry::Kind::kContent; r.Bytes(e.digest.data(), 32); break;
      default: return Bad(object, fmt::format("unknown entry kind {}", kind));
    }
  }
  if (version >= kChunkVersionPartial) {
    // 64 MiB blocks (the largest) have 16384 granules: 256 words.
    constexpr uint32_t kMaxWords = (64u << 20) / kGranuleSize / 64;
    uint32_t m = r.U32();
    if (!r.ok() || m != partial_entries) return Bad(object, "partial entry count does not match");
    uint32_t last = 0;
    for (uint32_t k = 0; k < m; k++) {
      uint32_t i = r.U32();
      auto base = std::make_shared<PartialBase>();
      r.Bytes(base->owner.bytes.data(), 16);
      base->epoch = r.U64();
      uint32_t words = r.U32();
      if (!r.ok() || words == 0 || words > kMaxWords || r.remaining() / 8 < words) return Bad(object, "truncated partial entry");
      base->written.resize(words);
      for (uint64_t& word : base->written) word = r.U64();
      if (i >= n || (k > 0 && i <= last) || !c.entries[i].is_partial())
        return Bad(object, fmt::format("partial record for entry {} out of order or not partial", i));
      if (base->owner.IsZero() || base->epoch == 0 || base->owner == c.entries[i].owner)
        return Bad(object, fmt::format("partial entry {} has a bad base", i));
      last = i;
      c.entries[i].partial = std::move(base);
    }
    if (r.remaining() != 0) return Bad(object, "trailing bytes");
  }
  return c;
}

std::string EncodeSnapshotRecord(const SnapshotRecord& s) {
  ByteWriter w;
  w.Bytes(kSnapMagic.data(), kSnapMagic.size());
  w.U32(kFormatVersion);
  w.U32(s.block_size);
  w.Bytes(s.volume.bytes.data(), 16);
  w.U64(s.id);
  w.U64(s.epoch);
  w.U64(s.size);
  w.U32(s.entries_per_chunk);
  PutChunkRefs(w, s.chunks);
  Seal(w);
  return std::move(w.data());
}

Result<SnapshotRecord> DecodeSnapshotRecord(std::string_view data, std::string_view object) {
  SKERRY_ASSIGN_OR_RETURN(ByteReader r, Open(data, kSnapMagic, object));
  SnapshotRecord s;
  s.block_size = r.U32();
  r.Bytes(s.volume.bytes.data(), 16);
  s.id = r.U64();
  s.epoch = r.U64();
  s.size = r.U64();
  s.entries_per_chunk = r.U32();
  if (!GetChunkRefs(r, &s.chunks)) return Bad(object, "truncated chunk table");
  if (r.remaining() != 0) return Bad(object, "trailing bytes");
  if (!ValidBlockSize(s.block_size)) return Bad(object, "bad block size");
  if (s.entries_per_chunk == 0 || s.entries_per_chunk > (1u << 20)) return Bad(object, "bad entries per chunk");
  if (!ValidateVolumeSize(s.size).ok()) return Bad(object, fmt::format("bad size {}", s.size));
  uint64_t blocks = (s.size + s.block_size - 1) / s.block_size;
  if (s.chunks.size() != ChunkCount(blocks, s.entries_per_chunk)) return Bad(object, "chunk table does not match the size");
  return s;
}

std::string EncodeDirectory(const Directory& d) {
  ByteWriter w;
  w.Bytes(kDirMagic.data(), kDirMagic.size());
  w.U32(kFormatVersion);
  w.U32(static_cast<uint32_t>(d.entries.size()));
  for (const DirectoryEntry& e : d.entries) {
    w.U16(static_cast<uint16_t>(e.name.size()));
    w.Bytes(e.name.data(), e.name.size());
    w.Bytes(e.id.bytes.data(), 16);
  }
  Seal(w);
  return std::move(w.data());
}

Result<Directory> DecodeDirectory(std::string_view data, std::string_view object) {
  SKERRY_ASSIGN_OR_RETURN(ByteReader r, Open(data, kDirMagic, object));
  Directory d;
  uint32_t n = r.U32();
  if (!r.ok() || r.remaining() / 19 < n) return Bad(object, "truncated");
  d.entries.resize(n);
  for (DirectoryEntry& e : d.entries) {
    uint16_t len = r.U16();
    e.name = std::string(r.View(len));
    r.Bytes(e.id.bytes.data(), 16);
    if (!r.ok()) return Bad(object, "truncated entry");
    if (e.name.empty() || e.name.size() > kMaxNameLength) return Bad(object, "bad name length");
  }
  if (r.remaining() != 0) return Bad(object, "trailing bytes");
  for (size_t i = 1; i < n; i++)
    if (!(d.entries[i - 1].name < d.entries[i].name)) return Bad(object, "entries not sorted or duplicated");
  return d;
}

std::string HeaderObject(const VolumeId& id) { return fmt::format("v.{}.header", id.Hex()); }
std::string LockObject(const VolumeId& id) { return fmt::format("v.{}.lock", id.Hex()); }
std::string HandoffObject(const VolumeId& id) { return fmt::format("v.{}.handoff", id.Hex()); }
std::string SnapshotObject(const VolumeId& id, uint64_t snap) { return fmt::format("v.{}.snap.{}", id.Hex(), snap); }
std::string ChunkObject(const VolumeId& owner, uint64_t epoch, uint64_t chunk) {
  return fmt::format("v.{}.map.{}.{}", owner.Hex(), epoch, chunk);
}
std::string ChunkObject(const ChunkRef& ref, uint64_t chunk) { return ChunkObject(ref.owner, ref.epoch, chunk); }
std::string BlockObject(const VolumeId& owner, uint64_t epoch, uint64_t block) {
  return fmt::format("v.{}.b.{}.{}", owner.Hex(), epoch, block);
}
std::string ContentObject(const Sha256Digest& d) { return "c." + ToHex(d); }
std::string EntryObject(const Entry& e, uint64_t block) {
  switch (e.kind) {
    case Entry::Kind::kHole: return {};
    case Entry::Kind::kPrivate:
    case Entry::Kind::kPartial: return BlockObject(e.owner, e.epoch, block);
    case Entry::Kind::kContent: return ContentObject(e.digest);
  }
  return {};
}
std::string BaseObject(const Entry& e, uint64_t block) {
  return e.is_partial() ? BlockObject(e.partial->owner, e.partial->epoch, block) : std::string();
}
std::string VolumePrefix(const VolumeId& id) { return fmt::format("v.{}.", id.Hex()); }

}  // namespace skerry::volume
