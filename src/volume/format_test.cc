#include "volume/format.h"

#include <gtest/gtest.h>

#include <cstring>

#include "skerry/object_store.h"
#include "util/crc32c.h"

namespace skerry::volume {
namespace {

Header SampleHeader() {
  Header h;
  h.id = VolumeId::Random();
  h.size = 10ull << 30;
  h.block_size = 4 << 20;
  h.epoch = 7;
  h.generation = 3;
  h.created_unix_ms = 1700000000000;
  h.parent_id = VolumeId::Random();
  h.parent_snap_id = 4;
  h.next_snap_id = 9;
  SnapshotEntry s;
  s.id = 2;
  s.epoch = 3;
  s.size = 1 << 30;
  s.name = "daily";
  s.children = {VolumeId::Random(), VolumeId::Random()};
  h.snapshots.push_back(s);
  h.chunks.resize(ChunkCount(h.block_count(), h.entries_per_chunk));
  h.chunks[0] = ChunkRef{h.id, 5};
  return h;
}

TEST(Format, HeaderRoundTrip) {
  Header h = SampleHeader();
  std::string raw = EncodeHeader(h);
  auto back = DecodeHeader(raw, "hdr");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, h.id);
  EXPECT_EQ(back->size, h.size);
  EXPECT_EQ(back->block_size, h.block_size);
  EXPECT_EQ(back->epoch, 7u);
  EXPECT_EQ(back->parent_id, h.parent_id);
  EXPECT_EQ(back->parent_snap_id, 4u);
  ASSERT_EQ(back->snapshots.size(), 1u);
  EXPECT_EQ(back->snapshots[0].name, "daily");
  EXPECT_EQ(back->snapshots[0].children, h.snapshots[0].children);
  EXPECT_EQ(back->chunks, h.chunks);
}

TEST(Format, EveryFlippedByteIsDetected) {
  std::string raw = EncodeHeader(SampleHeader());
  for (size_t i = 0; i < raw.size(); i++) {
    std::string bad = raw;
    bad[i] ^= 0x40;
    auto r = DecodeHeader(bad, "hdr");
    ASSERT_FALSE(r.ok()) << "flip at " << i;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << i << ": " << r.status().ToString();
  }
  for (size_t n = 0; n < raw.size(); n++) EXPECT_FALSE(DecodeHeader(raw.substr(0, n), "hdr").ok()) << n;
}

// Sizes are checked even where the checksum is right: a size near 2^64 would wrap the block
// count to 0, which an empty chunk table matches, and every read would then fail.
TEST(Format, SizesOutOfRangeAreCorruption) {
  for (uint64_t size : {uint64_t{0}, ~uint64_t{511}}) {  // empty; wraps the block count to 0
    Header h = SampleHeader();
    h.size = size;
    h.chunks.resize(ChunkCount(h.block_count(), h.entries_per_chunk));
    EXPECT_EQ(DecodeHeader(EncodeHeader(h), "hdr").status().code(), Code::kCorruption) << size;
    h = SampleHeader();
    h.snapshots[0].size = size;
    EXPECT_EQ(DecodeHeader(EncodeHeader(h), "hdr").status().code(), Code::kCorruption) << size;
    SnapshotRecord r;
    r.volume = VolumeId::Random();
    r.id = 3;
    r.epoch = 2;
    r.size = size;
    r.block_size = 4 << 20;
    r.entries_per_chunk = 1024;
    r.chunks.resize(ChunkCount((size + r.block_size - 1) / r.block_size, r.entries_per_chunk));
    EXPECT_EQ(DecodeSnapshotRecord(EncodeSnapshotRecord(r), "snap").status().code(), Code::kCorruption) << size;
  }
}

TEST(Format, NewerVersionIsRefusedClearly) {
  std::string raw = EncodeHeader(SampleHeader());
  raw[8] = 2;  // version field
  // Re-seal so only the version differs.
  std::string body = raw.substr(0, raw.size() - 4);
  uint32_t crc = Crc32c(body);
  std::memcpy(raw.data() + raw.size() - 4, &crc, 4);
  auto r = DecodeHeader(raw, "hdr");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotSupported);
  EXPECT_NE(r.status().message().find("newer skerry"), std::string::npos);
}

TEST(Format, ChunkRoundTripAndCorruption) {
  Chunk c;
  c.owner = VolumeId::Random();
  c.epoch = 3;
  c.index = 1;
  c.entries.resize(100);
  c.entries[5] = Entry::Private(c.owner, 2);
  c.entries[6].kind = Entry::Kind::kContent;
  c.entries[6].digest = Sha256("hello");
  std::string raw = EncodeChunk(c);
  auto back = DecodeChunk(raw, "chunk");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->entries.size(), 100u);
  EXPECT_EQ(back->entries[5], c.entries[5]);
  EXPECT_EQ(back->entries[6], c.entries[6]);
  EXPECT_TRUE(back->entries[7].is_hole());
  raw[100] ^= 1;
  auto bad = DecodeChunk(raw, "chunk");
  EXPECT_EQ(bad.status().code(), Code::kCorruption);
  EXPECT_NE(bad.status().message().find("chunk"), std::string::npos);
}

// A chunk with partial entries is version 2, with their bases and bitmaps after the entries;
// one without stays version 1. Every inconsistency between the two parts is corruption.
TEST(Format, PartialEntriesRoundTripAndAreChecked) {
  Chunk c;
  c.owner = VolumeId::Random();
  c.epoch = 4;
  c.index = 0;
  c.entries.resize(50);
  c.entries[3] = Entry::Private(c.owner, 1);
  auto base = std::make_shared<PartialBase>();
  base->owner = VolumeId::Random();
  base->epoch = 7;
  base->written = {0x8000000000000001ull, 0, 5, 0};
  c.entries[9] = Entry::Partial(c.owner, 4, base);
  auto base2 = std::make_shared<PartialBase>(*base);
  base2->written = {2};
  c.entries[20] = Entry::Partial(c.owner, 2, base2);
  const std::string raw = EncodeChunk(c);
  EXPECT_EQ(raw[8], 2) << "version";
  auto back = DecodeChunk(raw, "chunk");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  for (size_t i = 0; i < c.entries.size(); i++) EXPECT_TRUE(back->entries[i] == c.entries[i]) << i;
  EXPECT_TRUE(back->entries[9].partial->Has(0) && back->entries[9].partial->Has(63) && back->entries[9].partial->Has(128));
  EXPECT_FALSE(back->entries[9].partial->Has(1) || back->entries[9].partial->Has(255) || back->entries[9].partial->Has(256));
  EXPECT_EQ(BaseObject(back->entries[9], 9), BlockObject(base->owner, 7, 9));
  EXPECT_EQ(EntryObject(back->entries[9], 9), BlockObject(c.owner, 4, 9));
  for (size_t n = 0; n < raw.size(); n++) EXPECT_FALSE(DecodeChunk(raw.substr(0, n), "chunk").ok()) << n;
  for (size_t i = 0; i < raw.size(); i++) {
    std::string bad = raw;
    bad[i] ^= 0x10;
    EXPECT_FALSE(DecodeChunk(bad, "chunk").ok()) << "flip at " << i;
  }
  // Well sealed but inconsistent: each is corruption, never a partial entry without a base.
  auto reseal = [](std::string r) {
    uint32_t crc = Crc32c(std::string_view(r).substr(0, r.size() - 4));
    std::memcpy(r.data() + r.size() - 4, &crc, 4);
    return r;
  };
  const size_t entries_at = 8 + 4 + 4 + 16 + 8 + 8;
  const size_t records_at = entries_at + 50 * kEntrySize;
  std::vector<std::pair<std::string, std::string>> cases;
  std::string v1 = raw;
  v1[8] = 1;  // a version 1 chunk cannot hold partial entries
  cases.push_back({"version 1", reseal(v1)});
  std::string kind = raw;
  kind[entries_at + 3 * kEntrySize] = 3;  // one more partial entry than records
  cases.push_back({"count", reseal(kind)});
  std::string self = raw;  // base owner = the entry's own owner
  std::memcpy(self.data() + records_at + 4 + 4, c.owner.bytes.data(), 16);
  cases.push_back({"self base", reseal(self)});
  std::string order = raw;  // the second record names entry 3, before the first's 9
  uint32_t three = 3;
  std::memcpy(order.data() + records_at + 4 + (4 + 16 + 8 + 4 + 4 * 8), &three, 4);
  cases.push_back({"order", reseal(order)});
  std::string words = raw;  // no bitmap words
  std::memset(words.data() + records_at + 4 + 4 + 16 + 8, 0, 4);
  cases.push_back({"words", reseal(words)});
  for (const auto& [what, bytes] : cases) {
    auto r = DecodeChunk(bytes, "chunk");
    EXPECT_EQ(r.status().code(), Code::kCorruption) << what << ": " << r.status().ToString();
  }
  // Without partial entries: version 1, as before.
  c.entries[9] = Entry{};
  c.entries[20] = Entry{};
  EXPECT_EQ(EncodeChunk(c)[8], 1);
}

TEST(Format, DirectoryAndSnapshotRecordRoundTrip) {
  Directory d;
  d.entries = {{"a", VolumeId::Random()}, {"b", VolumeId::Random()}};
  auto back = DecodeDirectory(EncodeDirectory(d), "dir");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->entries.size(), 2u);
  EXPECT_EQ(back->Find("b")->id, d.entries[1].id);

  SnapshotRecord r;
  r.volume = VolumeId::Random();
  r.id = 3;
  r.epoch = 2;
  r.size = 1 << 30;
  r.block_size = 4 << 20;
  r.chunks.resize(1);
  auto rb = DecodeSnapshotRecord(EncodeSnapshotRecord(r), "snap");
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_EQ(rb->size, r.size);
  EXPECT_FALSE(DecodeSnapshotRecord("garbage that is long enough", "snap").ok());
}

TEST(Format, ObjectNamesAreValidStoreNames) {
  VolumeId id = VolumeId::Random();
  EXPECT_TRUE(IsValidObjectName(HeaderObject(id)));
  EXPECT_TRUE(IsValidObjectName(BlockObject(id, 3, 123456)));
  EXPECT_TRUE(IsValidObjectName(ChunkObject(id, 3, 7)));
  EXPECT_TRUE(IsValidObjectName(ContentObject(Sha256("x"))));
  EXPECT_TRUE(IsValidObjectName(std::string(kDirectoryObject)));
  EXPECT_EQ(BlockObject(id, 3, 12), "v." + id.Hex() + ".b.3.12");
}

}  // namespace
}  // namespace skerry::volume
