// Partial blocks: a clone's first write into a block it shares with its parent copies nothing.
// The block's entry becomes partial: its own object holds the 4 KiB granules the clone wrote,
// the rest reads from the parent's object (docs/format.md, "Partial entries"). Each test
// checks the bytes through the Volume API, what the store holds, and `skerry check`.
#include <gtest/gtest.h>

#include <future>
#include <string>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "store/fault/nondurable_store.h"
#include "store/mem/mem_store.h"
#include "volume/format.h"
#include "volume/metadata.h"
#include "volume/test_util.h"
#include "volume/volume_map.h"

namespace skerry {
namespace {

using testing::Pattern;
using volume::Entry;

constexpr uint32_t kBs = 64 * 1024;
constexpr uint32_t kG = volume::kGranuleSize;

// Volume "p" of `data` (block size `bs`), its snapshot "s", and "c", a clone of it.
void ParentAndClone(Catalog& cat, const std::string& data, uint32_t bs) {
  testing::CreateFilled(cat, "p", data, bs);
  ASSERT_TRUE(cat.CreateSnapshot("p", "s").ok());
  ASSERT_TRUE(cat.Clone("p", "s", "c").ok());
}

// Parameters: the store and the deferred copy-up mode (testing::StoreModeTest).
class PartialTest : public testing::StoreModeTest {
 protected:
  void SetUp() override {
    StoreModeTest::SetUp();
    if (HasFatalFailure()) return;
    // The parent: 4 blocks of a pattern, the last one short (the volume ends mid-granule).
    parent_ = Pattern(3 * kBs + 10240, 3);
    ParentAndClone(*cat_, parent_, kBs);
  }

  // The persisted map entry of `block` of volume `name`'s head.
  Entry PersistedEntry(const std::string& name, uint64_t block) {
    auto dir = volume::ReadDirectory(*store_);
    EXPECT_TRUE(dir.ok());
    const volume::DirectoryEntry* d = dir->Find(name);
    EXPECT_TRUE(d != nullptr);
    auto h = volume::ReadHeader(*store_, d->id);
    EXPECT_TRUE(h.ok());
    volume::VolumeMap m(*store_, h->id, h->epoch, h->block_count(), h->entries_per_chunk, h->chunks);
    auto e = m.Get(block);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? *e : Entry{};
  }
  uint64_t ObjectSize(const std::string& object) {
    auto info = store_->Stat(object);
    EXPECT_TRUE(info.ok()) << object << ": " << info.status().ToString();
    return info.ok() ? info->size : 0;
  }

  std::string parent_;
};

TEST_P(PartialTest, AClonesFirstWriteCopiesNothing) {
  std::string expect = parent_;
  {
    auto v = Open("c");
    std::string a = Pattern(kG, 11), b = Pattern(2 * kG, 12);
    WriteAt(*v, kBs + 3 * kG, a);  // block 1, granule 3
    WriteAt(*v, kBs + 8 * kG, b);  // block 1, granules 8-9
    expect.replace(kBs + 3 * kG, kG, a);
    expect.replace(kBs + 8 * kG, 2 * kG, b);
    // Read before the flush, from the own object and the parent's, in one request.
    std::string got(kBs, '\0');
    ASSERT_TRUE(v->Read(kBs, std::span<char>(got.data(), got.size())).ok());
    EXPECT_TRUE(got == expect.substr(kBs, kBs));
    ASSERT_TRUE(v->Flush().ok());
  }
  EXPECT_TRUE(ReadSpec("c") == expect);
  EXPECT_TRUE(ReadSpec("p@s") == parent_);
  Entry e = PersistedEntry("c", 1);
  ASSERT_TRUE(e.is_partial());
  for (uint64_t g = 0; g < kBs / kG; g++) EXPECT_EQ(e.partial->Has(g), g == 3 || g == 8 || g == 9) << "granule " << g;
  // The clone's object holds what it wrote and nothing past it.
  EXPECT_EQ(ObjectSize(volume::EntryObject(e, 1)), 10 * kG);
  EXPECT_TRUE(PersistedEntry("c", 0) == PersistedEntry("p", 0));  // untouched: still the parent's
  ExpectCheckClean();
}

TEST_P(PartialTest, WritesThatCutGranulesTakeTheRestFromTheParent) {
  std::string expect = parent_;
  {
    auto v = Open("c");
    // Inside one granule; across two; ending at the volume's end, mid-granule.
    const std::pair<uint64_t, std::string> writes[] = {
        {100, "a few bytes"},
        {2 * kBs + kG - 7, std::string(20, 'x')},
        {parent_.size() - 30, std::string(30, 'z')},
        {110, "overlapping the first, now in a granule of ours"},
    };
    for (const auto& [off, data] : writes) {
      WriteAt(*v, off, data);
      expect.replace(off, data.size(), data);
    }
    EXPECT_TRUE(testing::ReadWhole(*v) == expect);
  }
  EXPECT_TRUE(ReadSpec("c") == expect);
  EXPECT_TRUE(PersistedEntry("c", 0).is_partial());
  EXPECT_TRUE(PersistedEntry("c", 2).is_partial());
  EXPECT_TRUE(PersistedEntry("c", 3).is_partial());
  ExpectCheckClean();
}

TEST_P(PartialTest, ABlockWrittenGranuleByGranuleBecomesPrivate) {
  std::string expect = parent_;
  {
    auto v = Open("c");
    // Granules in a scattered order, the last one cut short: block 0 ends up all ours.
    for (uint64_t i = 0; i < kBs / kG; i++) {
      uint64_t g = (i * 7) % (kBs / kG);
      std::string data = Pattern(g == 5 ? kG - 1 : kG, static_cast<uint32_t>(g));
      WriteAt(*v, g * kG, data);
      expect.replace(g * kG, data.size(), data);
    }
    // Zeros into the last, short block, granule by granule, up to the end of the volume.
    for (uint64_t off = 3 * kBs; off < parent_.size(); off += kG) {
      uint64_t n = std::min<uint64_t>(kG, parent_.size() - off);
      ASSERT_TRUE(v->WriteZeroes(off, n, /*may_trim=*/false, false).ok());
      expect.replace(off, n, std::string(n, '\0'));
    }
  }
  EXPECT_TRUE(ReadSpec("c") == expect);
  EXPECT_EQ(PersistedEntry("c", 0).kind, Entry::Kind::kPrivate);
  EXPECT_EQ(PersistedEntry("c", 3).kind, Entry::Kind::kPrivate);
  ExpectCheckClean();
}

TEST_P(PartialTest, SnapshotsOfAPartialBlockKeepTheirBytes) {
  std::string before = parent_;
  {
    auto v = Open("c");
    WriteAt(*v, 5 * kG, "first");
    before.replace(5 * kG, 5, "first");
  }
  ASSERT_TRUE(cat_->CreateSnapshot("c", "s").ok());
  std::string after = before;
  {
    // The head's next write copies the frozen partial block: its own granules and the parent's.
    auto v = Open("c");
    WriteAt(*v, 9 * kG + 1, "second");
    after.replace(9 * kG + 1, 6, "second");
  }
  EXPECT_TRUE(ReadSpec("c@s") == before);
  EXPECT_TRUE(ReadSpec("c") == after);
  EXPECT_EQ(PersistedEntry("c", 0).kind, Entry::Kind::kPrivate);
  // A clone of the snapshot inherits the partial entry, and copies it whole on its first write.
  ASSERT_TRUE(cat_->Clone("c", "s", "cc").ok());
  EXPECT_TRUE(ReadSpec("cc") == before);
  std::string grand = before;
  {
    auto v = Open("cc");
    WriteAt(*v, 100, "third");
    grand.replace(100, 5, "third");
  }
  EXPECT_TRUE(ReadSpec("cc") == grand);
  EXPECT_TRUE(ReadSpec("c@s") == before);
  ExpectCheckClean();
  // Removing the snapshot's clone, then the snapshot, frees what only they named.
  ASSERT_TRUE(cat_->Remove("cc").ok());
  ASSERT_TRUE(cat_->RemoveSnapshot("c", "s").ok());
  EXPECT_TRUE(ReadSpec("c") == after);
  ExpectCheckClean();
}

TEST_P(PartialTest, TrimsZeroesAndRollbacksOfPartialBlocks) {
  std::string expect = parent_;
  {
    auto v = Open("c");
    WriteAt(*v, 0, "block 0");
    WriteAt(*v, kBs, "block 1");
    WriteAt(*v, 2 * kBs + 3 * kG, "block 2");
    ASSERT_TRUE(v->Trim(0, kBs).ok());  // whole: a hole, its own object goes
    expect.replace(0, kBs, std::string(kBs, '\0'));
    ASSERT_TRUE(v->Trim(kBs + 10, 2 * kG).ok());  // part: zeros in it
    expect.replace(kBs, 7, "block 1");
    expect.replace(kBs + 10, 2 * kG, std::string(2 * kG, '\0'));
    ASSERT_TRUE(v->WriteZeroes(2 * kBs, kBs, /*may_trim=*/false, false).ok());  // whole, no holes
    expect.replace(2 * kBs, kBs, std::string(kBs, '\0'));
    ASSERT_TRUE(v->Flush().ok());
    EXPECT_TRUE(testing::ReadWhole(*v) == expect);
  }
  EXPECT_TRUE(ReadSpec("c") == expect);
  EXPECT_TRUE(PersistedEntry("c", 0).is_hole());
  EXPECT_TRUE(PersistedEntry("c", 1).is_partial());
  EXPECT_EQ(PersistedEntry("c", 2).kind, Entry::Kind::kPrivate);
  ExpectCheckClean();
  // A snapshot, more partial writes, and back.
  ASSERT_TRUE(cat_->CreateSnapshot("c", "s").ok());
  {
    auto v = Open("c");
    WriteAt(*v, 3 * kBs + 1, "block 3");
  }
  ASSERT_TRUE(cat_->Rollback("c", "s").ok());
  EXPECT_TRUE(ReadSpec("c") == expect);
  ASSERT_TRUE(cat_->RemoveSnapshot("c", "s").ok());
  ExpectCheckClean();
  // Growing past a partial last block shows zeros past the old end.
  ASSERT_TRUE(cat_->Resize("c", 5 * kBs, false).ok());
  expect.resize(5 * kBs, '\0');
  EXPECT_TRUE(ReadSpec("c") == expect);
  ExpectCheckClean();
}

TEST_P(PartialTest, TheParentStaysUntouchedAndCannotGo) {
  {
    auto v = Open("c");
    WriteAt(*v, 77, "partial");
  }
  EXPECT_EQ(cat_->RemoveSnapshot("p", "s").code(), Code::kBusy);
  EXPECT_EQ(cat_->Remove("p").code(), Code::kBusy);
  {
    // The parent's head overwrites the same block: the clone keeps its base.
    auto v = Open("p");
    WriteAt(*v, 0, std::string(kBs, 'P'));
  }
  std::string expect = parent_;
  expect.replace(77, 7, "partial");
  EXPECT_TRUE(ReadSpec("c") == expect);
  ASSERT_TRUE(cat_->Remove("c").ok());
  ASSERT_TRUE(cat_->RemoveSnapshot("p", "s").ok());
  ExpectCheckClean();
}

TEST_P(PartialTest, SwitchedOffTheBlockIsCopiedWhole) {
  VolumeOptions off = options_;
  off.partial_blocks = false;
  {
    auto cat = std::move(*Catalog::Open(store_, off));
    auto v = std::move(*cat->Open("c", {}));
    WriteAt(*v, kG, "copied");
  }
  Entry e = PersistedEntry("c", 0);
  EXPECT_EQ(e.kind, Entry::Kind::kPrivate);
  EXPECT_EQ(ObjectSize(volume::EntryObject(e, 0)), kBs);
  std::string expect = parent_;
  expect.replace(kG, 6, "copied");
  EXPECT_TRUE(ReadSpec("c") == expect);
}

// On a natively asynchronous store a write into granules a partial block holds already goes
// the asynchronous way (no map change needed); one into a granule it lacks does not.
TEST(PartialAsyncTest, WritesIntoHeldGranulesAreAsynchronous) {
  auto store = OpenStore("delay:ms=0&async=2+mem:");
  ASSERT_TRUE(store.ok());
  auto cat = std::move(*Catalog::Open(*store));
  std::string expect = Pattern(2 * kBs, 8);
  ParentAndClone(*cat, expect, kBs);
  auto v = std::move(*cat->Open("c", {}));
  const std::string a = Pattern(2 * kG, 9);
  ASSERT_TRUE(v->Write(kBs + 2 * kG, std::span<const char>(a.data(), a.size())).ok());  // granules 2-3
  expect.replace(kBs + 2 * kG, a.size(), a);
  auto async_write = [&](uint64_t off, const std::string& data) {
    std::promise<Status> done;
    if (!testing::Fast(*v).TryWriteAsync(off, std::span<const char>(data.data(), data.size()), [&](Status st) { done.set_value(st); }))
      return false;
    EXPECT_TRUE(done.get_future().get().ok());
    return true;
  };
  const std::string b = "held granule";
  EXPECT_TRUE(async_write(kBs + 3 * kG + 100, b));
  expect.replace(kBs + 3 * kG + 100, b.size(), b);
  EXPECT_FALSE(async_write(kBs + 3 * kG + 4090, b)) << "reaches granule 4, which the clone lacks";
  EXPECT_FALSE(async_write(5 * kG, b)) << "block 0 is still the parent's";
  ASSERT_TRUE(v->Trim(kBs, kBs).ok());  // waits for writes in flight into the own object
  expect.replace(kBs, kBs, std::string(kBs, '\0'));
  EXPECT_TRUE(testing::ReadWhole(*v) == expect);
  ASSERT_TRUE(v->Close().ok());
  EXPECT_TRUE(testing::ReadWhole(*cat, "c") == expect);
}

// A partial record's bitmap may have fewer words than its block needs (format.md: missing
// words hold no granule). A write into a granule past them grew nothing: it wrote past the
// vector's end and kept a bitmap that did not name the write (found in review).
TEST(PartialFormatTest, AShortBitmapFromTheStoreIsGrownBeforeBitsAreSet) {
  constexpr uint32_t kBig = 1024 * 1024;  // 256 granules: 4 words
  auto store = std::make_shared<MemStore>();
  auto cat = std::move(*Catalog::Open(store));
  std::string expect = Pattern(kBig, 21);
  ParentAndClone(*cat, expect, kBig);
  {
    auto v = std::move(*cat->Open("c", {}));
    const std::string a = Pattern(kG, 22);
    ASSERT_TRUE(v->Write(kG, std::span<const char>(a.data(), a.size())).ok());
    expect.replace(kG, a.size(), a);
  }
  // The clone's chunk again, with the same bitmap in one word.
  auto dir = volume::ReadDirectory(*store);
  ASSERT_TRUE(dir.ok());
  auto h = volume::ReadHeader(*store, dir->Find("c")->id);
  ASSERT_TRUE(h.ok());
  const std::string name = volume::ChunkObject(h->chunks[0], 0);
  auto chunk = volume::DecodeChunk(*store->Get(name), name);
  ASSERT_TRUE(chunk.ok() && chunk->entries[0].is_partial());
  auto shorter = std::make_shared<volume::PartialBase>(*chunk->entries[0].partial);
  shorter->written.resize(1);
  chunk->entries[0].partial = shorter;
  ASSERT_TRUE(store->Put(name, volume::EncodeChunk(*chunk)).ok());
  {
    auto v = std::move(*cat->Open("c", {}));
    EXPECT_TRUE(testing::ReadWhole(*v) == expect);
    const std::string b = Pattern(kG, 23);
    ASSERT_TRUE(v->Write(200 * kG, std::span<const char>(b.data(), b.size())).ok());  // word 3
    expect.replace(200 * kG, b.size(), b);
    EXPECT_TRUE(testing::ReadWhole(*v) == expect) << "the write into granule 200 is lost";
  }
  EXPECT_TRUE(testing::ReadWhole(*cat, "c") == expect);
}

// Found by crash_test: a whole-block write into a partial block of ours made its object
// afresh (truncated, then written); a power cut before the flush that kept the truncation and
// not all of the data showed zeros where the persisted map named the object's granules:
// bytes neither flushed nor written. Now such writes (and zeroes) go in place.
TEST(PartialCrashTest, AWholeBlockWriteOverAPartialOneTearsOnlyIntoOldOrNewBytes) {
  for (int run = 0; run < 200; run++) {
    const bool zero = run % 4 == 3;
    auto disk = std::make_shared<MemStore>();
    auto power = std::make_shared<NonDurableStore>(disk);
    auto cat = std::move(*Catalog::Open(power));
    const std::string parent = Pattern(2 * kBs, 5);
    ParentAndClone(*cat, parent, kBs);
    std::string flushed = parent;
    auto v = std::move(*cat->Open("c", {}));
    const std::string mine = Pattern(3 * kG, 6);
    ASSERT_TRUE(v->Write(kG, std::span<const char>(mine.data(), mine.size())).ok());
    flushed.replace(kG, mine.size(), mine);
    ASSERT_TRUE(v->Flush().ok());  // the map names block 0 partial, its own object granules 1-3
    std::string written = flushed;
    written.replace(0, kBs, std::string(kBs, zero ? '\0' : 'W'));
    ASSERT_TRUE((zero ? v->WriteZeroes(0, kBs, /*may_trim=*/false, false)
                      : v->Write(0, std::span<const char>(written.data(), kBs)))
                    .ok());
    power->Crash(CrashMode::kTear, run);  // some of what was not synced survives
    v.reset();
    auto after = std::move(*Catalog::Open(disk));
    const std::string got = testing::ReadWhole(*after, "c");
    ASSERT_EQ(got.size(), flushed.size());
    for (size_t i = 0; i < got.size(); i++)
      ASSERT_TRUE(got[i] == flushed[i] || got[i] == written[i])
          << (zero ? "zeroes" : "write") << ", run " << run << ": byte " << i << " is neither flushed nor written";
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, PartialTest, testing::StoreModes(), testing::StoreModeName);

}  // namespace
}  // namespace skerry
