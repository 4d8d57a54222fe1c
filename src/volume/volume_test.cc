// Unit tests of every volume operation, on the memory store and on a directory store.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <optional>
#include <set>
#include <thread>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "volume/format.h"
#include "util/pipe.h"
#include "util/sim_clock.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

using testing::CountingStore;
using testing::Pattern;
using testing::TakeOverLock;
using testing::TempDir;

constexpr uint32_t kBs = 64 * 1024;

class VolumeTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // "async": completions on the store's own threads, as with RADOS (ReadAsync is then
    // asynchronous; every other call waits for its completion).
    std::string uri = GetParam() == "dir" ? "dir:" + dir_.path() : GetParam() == "async" ? "delay:ms=0&async=2+mem:" : "mem:";
    auto store = OpenStore(uri);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    raw_ = *store;
    counting_ = std::make_shared<CountingStore>(raw_);
    // Leases run in simulated time: a test moves clock_ on to renew or lapse them.
    VolumeOptions options;
    options.clock = clock_;
    auto cat = Catalog::Open(counting_, options);
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    cat_ = std::move(*cat);
  }

  std::unique_ptr<Volume> Open(const std::string& spec, bool read_only = false) {
    OpenOptions o;
    o.read_only = read_only;
    auto v = cat_->Open(spec, o);
    EXPECT_TRUE(v.ok()) << spec << ": " << v.status().ToString();
    return v.ok() ? std::move(*v) : nullptr;
  }
  std::string ReadAll(Volume& v) {
    std::string out(v.size(), 'x');
    Status st = v.Read(0, std::span<char>(out.data(), out.size()));
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }
  std::string ReadSpec(const std::string& spec) {
    auto v = Open(spec, true);
    return v ? ReadAll(*v) : "";
  }
  void WriteAt(Volume& v, uint64_t off, const std::string& data) {
    Status st = v.Write(off, std::span<const char>(data.data(), data.size()));
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  // Every private entry of every map points at an object that exists (crash contract).
  void ExpectNoDanglingEntries() {
    auto objects = raw_->List("");
    ASSERT_TRUE(objects.ok());
    std::set<std::string> have(objects->begin(), objects->end());
    for (const std::string& o : *objects) {
      if (o.find(".map.") == std::string::npos) continue;
      auto raw = raw_->Get(o);
      ASSERT_TRUE(raw.ok());
      auto chunk = volume::DecodeChunk(*raw, o);
      ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
      for (size_t i = 0; i < chunk->entries.size(); i++) {
        uint64_t block = chunk->index * volume::kEntriesPerChunk + i;
        std::string name = volume::EntryObject(chunk->entries[i], block);
        if (!name.empty()) {
          EXPECT_TRUE(have.count(name)) << o << " points at missing " << name;
        }
      }
    }
  }

  TempDir dir_;
  std::shared_ptr<ObjectStore> raw_;
  std::shared_ptr<CountingStore> counting_;
  std::shared_ptr<SimClock> clock_ = std::make_shared<SimClock>();
  std::unique_ptr<Catalog> cat_;
};

TEST_P(VolumeTest, CreateIsThinAndHolesReadZerosWithoutTouchingTheStore) {
  ASSERT_TRUE(cat_->Create("disk", 1ull << 30).ok());
  auto objects = raw_->List("");
  ASSERT_TRUE(objects.ok());
  EXPECT_EQ(objects->size(), 2u) << "only the directory and the header";
  auto v = Open("disk");
  std::string buf(1 << 20, 'x');
  int before = counting_->reads;
  ASSERT_TRUE(v->Read(123456789, std::span<char>(buf.data(), buf.size())).ok());
  EXPECT_EQ(counting_->reads, before);
  EXPECT_EQ(buf, std::string(buf.size(), '\0'));
}

TEST_P(VolumeTest, UnalignedWritesAcrossBlocksReadBack) {
  ASSERT_TRUE(cat_->Create("d", 1 << 20, kBs).ok());
  auto v = Open("d");
  std::string model(1 << 20, '\0');
  for (int i = 0; i < 50; i++) {
    uint64_t off = (i * 7919 * 13) % (model.size() - 1);
    uint64_t len = std::min<uint64_t>(model.size() - off, 1 + (i * 104729) % (3 * kBs));
    std::string data = Pattern(len, i);
    WriteAt(*v, off, data);
    model.replace(off, len, data);
  }
  EXPECT_EQ(ReadAll(*v), model);
  ASSERT_TRUE(v->Close().ok());
  EXPECT_EQ(ReadSpec("d"), model) << "after reopen";
  ExpectNoDanglingEntries();
}

TEST_P(VolumeTest, SnapshotFreezesDataAndFirstWriteCopiesOnce) {
  ASSERT_TRUE(cat_->Create("d", 4 * kBs, kBs).ok());
  std::string a = Pattern(4 * kBs, 1);
  {
    auto v = Open("d");
    WriteAt(*v, 0, a);
    ASSERT_TRUE(v->Close().ok());
  }
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s1").ok());
  auto v = Open("d");
  int copies = counting_->copies;
  // Counted after flushes: a copy-up may be deferred (done by a copier thread) until then.
  WriteAt(*v, 10, "hello");  // partial write to a shared block: one copy-up
  WriteAt(*v, 20, "world");  // same block again: held for that copy-up, or in place after it
  ASSERT_TRUE(v->Flush().ok());
  EXPECT_EQ(counting_->copies, copies + 1);
  WriteAt(*v, 30, "again");  // the block is private now: in place
  WriteAt(*v, kBs, Pattern(kBs, 9));  // whole block: no copy needed
  ASSERT_TRUE(v->Flush().ok());
  EXPECT_EQ(counting_->copies, copies + 1);
  ASSERT_TRUE(v->Close().ok());
  std::string head = a;
  head.replace(10, 5, "hello");
  head.replace(20, 5, "world");
  head.replace(30, 5, "again");
  head.replace(kBs, kBs, Pattern(kBs, 9));
  EXPECT_EQ(ReadSpec("d"), head);
  EXPECT_EQ(ReadSpec("d@s1"), a);
  ExpectNoDanglingEntries();
}

TEST_P(VolumeTest, SnapshotsAreReadOnly) {
  ASSERT_TRUE(cat_->Create("d", kBs, kBs).ok());
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s").ok());
  auto s = Open("d@s");
  EXPECT_TRUE(s->read_only());
  EXPECT_EQ(s->Write(0, std::span<const char>("x", 1)).code(), Code::kReadOnly);
  EXPECT_EQ(cat_->CreateSnapshot("d", "s").code(), Code::kAlreadyExists);
}

TEST_P(VolumeTest, CloneIsThinAndIndependent) {
  ASSERT_TRUE(cat_->Create("img", 8 * kBs, kBs).ok());
  std::string base = Pattern(8 * kBs, 3);
  {
    auto v = Open("img");
    WriteAt(*v, 0, base);
    ASSERT_TRUE(v->Close().ok());
  }
  ASSERT_TRUE(cat_->CreateSnapshot("img", "gold").ok());
  auto before = raw_->List("");
  ASSERT_TRUE(cat_->Clone("img", "gold", "vm1", 16 * kBs).ok());
  auto after = raw_->List("");
  EXPECT_EQ(after->size(), before->size() + 1) << "a clone adds only its header (the directory is rewritten)";
  auto info = cat_->Info("vm1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->parent, "img@gold");
  EXPECT_EQ(info->size, 16u * kBs);
  std::string expect = base + std::string(8 * kBs, '\0');
  EXPECT_EQ(ReadSpec("vm1"), expect);
  {
    auto c = Open("vm1");
    WriteAt(*c, 5, "clone");
    WriteAt(*c, 12 * kBs, "tail");
    ASSERT_TRUE(c->Close().ok());
  }
  expect.replace(5, 5, "clone");
  expect.replace(12 * kBs, 4, "tail");
  EXPECT_EQ(ReadSpec("vm1"), expect);
  EXPECT_EQ(ReadSpec("img@gold"), base);
  EXPECT_EQ(ReadSpec("img"), base);
  // A clone of a clone.
  ASSERT_TRUE(cat_->CreateSnapshot("vm1", "s").ok());
  ASSERT_TRUE(cat_->Clone("vm1", "s", "vm2").ok());
  EXPECT_EQ(ReadSpec("vm2"), expect);
  ExpectNoDanglingEntries();
}

TEST_P(VolumeTest, SnapshotWithClonesCannotBeRemoved) {
  ASSERT_TRUE(cat_->Create("img", kBs, kBs).ok());
  ASSERT_TRUE(cat_->CreateSnapshot("img", "gold").ok());
  ASSERT_TRUE(cat_->Clone("img", "gold", "vm1").ok());
  ASSERT_TRUE(cat_->Clone("img", "gold", "vm2").ok());
  Status st = cat_->RemoveSnapshot("img", "gold");
  EXPECT_EQ(st.code(), Code::kBusy);
  EXPECT_NE(st.message().find("vm1"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("vm2"), std::string::npos) << st.ToString();
  EXPECT_EQ(cat_->Remove("img").code(), Code::kBusy);
  auto snaps = cat_->ListSnapshots("img");
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ((*snaps)[0].children, (std::vector<std::string>{"vm1", "vm2"}));
  ASSERT_TRUE(cat_->Remove("vm1").ok());
  ASSERT_TRUE(cat_->Remove("vm2").ok());
  ASSERT_TRUE(cat_->RemoveSnapshot("img", "gold").ok());
  ASSERT_TRUE(cat_->Remove("img").ok());
  auto left = raw_->List("v.");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << "objects left after removing everything: " << left->size() << " first " << (*left)[0];
}

TEST_P(VolumeTest, SnapRemoveFreesOnlyWhatNothingElseUses) {
  ASSERT_TRUE(cat_->Create("d", 4 * kBs, kBs).ok());
  std::string v1 = Pattern(4 * kBs, 1);
  {
    auto v = Open("d");
    WriteAt(*v, 0, v1);
  }
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s1").ok());
  std::string v2 = v1;
  {
    auto v = Open("d");
    WriteAt(*v, 0, std::string(kBs, 'b'));
    v2.replace(0, kBs, std::string(kBs, 'b'));
  }
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s2").ok());
  {
    auto v = Open("d");
    WriteAt(*v, kBs, std::string(kBs, 'c'));
  }
  std::string head = v2;
  head.replace(kBs, kBs, std::string(kBs, 'c'));
  ASSERT_TRUE(cat_->RemoveSnapshot("d", "s1").ok());
  EXPECT_EQ(ReadSpec("d@s2"), v2);
  EXPECT_EQ(ReadSpec("d"), head);
  ASSERT_TRUE(cat_->RemoveSnapshot("d", "s2").ok());
  EXPECT_EQ(ReadSpec("d"), head);
  ExpectNoDanglingEntries();
  // Only the head's 4 blocks, one chunk, header, lock remain of the volume.
  auto left = raw_->List("v.");
  size_t blocks = 0;
  for (auto& o : *left) blocks += o.find(".b.") != std::string::npos;
  EXPECT_EQ(blocks, 4u);
  EXPECT_EQ(cat_->RemoveSnapshot("d", "nope").code(), Code::kNotFound);
}

TEST_P(VolumeTest, RollbackRestoresSnapshotAndFreesHeadObjects) {
  ASSERT_TRUE(cat_->Create("d", 4 * kBs, kBs).ok());
  std::string a = Pattern(2 * kBs, 5);
  {
    auto v = Open("d");
    WriteAt(*v, 0, a);
  }
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s").ok());
  {
    auto v = Open("d");
    WriteAt(*v, 100, "changed");
    WriteAt(*v, 3 * kBs, "more");
    ASSERT_TRUE(v->Resize(8 * kBs, false).ok());
  }
  ASSERT_TRUE(cat_->Rollback("d", "s").ok());
  std::string expect = a + std::string(2 * kBs, '\0');
  EXPECT_EQ(ReadSpec("d"), expect);
  EXPECT_EQ(cat_->Info("d")->size, 4u * kBs);
  {
    auto v = Open("d");
    WriteAt(*v, 0, "after");
  }
  expect.replace(0, 5, "after");
  EXPECT_EQ(ReadSpec("d"), expect);
  EXPECT_EQ(ReadSpec("d@s"), a + std::string(2 * kBs, '\0'));
  ExpectNoDanglingEntries();
}

TEST_P(VolumeTest, ResizeGrowsAndShrinksOnlyWhenAllowed) {
  ASSERT_TRUE(cat_->Create("d", 3 * kBs, kBs).ok());
  {
    auto v = Open("d");
    WriteAt(*v, 0, std::string(3 * kBs, 'x'));
  }
  EXPECT_EQ(cat_->Resize("d", kBs + 512, false).code(), Code::kInvalidArgument);
  ASSERT_TRUE(cat_->Resize("d", kBs + 512, true).ok());
  EXPECT_EQ(ReadSpec("d"), std::string(kBs + 512, 'x'));
  ASSERT_TRUE(cat_->Resize("d", 4 * kBs, false).ok());
  EXPECT_EQ(ReadSpec("d"), std::string(kBs + 512, 'x') + std::string(3 * kBs - 512, '\0'))
      << "growing again must not resurrect old data";
  EXPECT_EQ(cat_->Resize("d", 1000, true).code(), Code::kInvalidArgument) << "not a multiple of 512";
  ExpectNoDanglingEntries();
}

// A shrink leaves the bytes of the new last block past the new end as they were (zeroing
// them first made the shrink not all-or-nothing across a crash). Whatever shows them later
// must zero them: a grow, and a snapshot, whose larger clones show them without growing.
TEST_P(VolumeTest, BytesPastAShrunkEndNeverShowAgain) {
  ASSERT_TRUE(cat_->Create("d", 3 * kBs, kBs).ok());
  std::string data = Pattern(3 * kBs, 11);
  {
    auto v = Open("d");
    WriteAt(*v, 0, data);
  }
  ASSERT_TRUE(cat_->CreateSnapshot("d", "full").ok());  // block 1's object is shared from here on
  ASSERT_TRUE(cat_->Resize("d", kBs + 512, true).ok());
  ASSERT_TRUE(cat_->CreateSnapshot("d", "short").ok());
  const std::string expect = data.substr(0, kBs + 512) + std::string(2 * kBs - 512, '\0');
  ASSERT_TRUE(cat_->Clone("d", "short", "bigger", 3 * kBs).ok());
  EXPECT_TRUE(ReadSpec("bigger") == expect) << "a larger clone of the shrunk volume shows old bytes";
  ASSERT_TRUE(cat_->Clone("d", "full", "whole").ok());
  EXPECT_TRUE(ReadSpec("whole") == data) << "the older snapshot lost its bytes";
  ASSERT_TRUE(cat_->Resize("d", 3 * kBs, false).ok());
  EXPECT_TRUE(ReadSpec("d") == expect) << "growing shows old bytes";
  ExpectNoDanglingEntries();
}

TEST_P(VolumeTest, TrimMakesHolesAndFreesObjectsAfterFlush) {
  ASSERT_TRUE(cat_->Create("d", 4 * kBs, kBs).ok());
  auto v = Open("d");
  WriteAt(*v, 0, std::string(4 * kBs, 'x'));
  ASSERT_TRUE(v->Flush().ok());
  ASSERT_TRUE(v->Trim(kBs, 2 * kBs + 10).ok());
  auto ext = v->Extents(0, 4 * kBs);
  ASSERT_TRUE(ext.ok());
  ASSERT_EQ(ext->size(), 3u);
  EXPECT_FALSE((*ext)[0].hole);
  EXPECT_TRUE((*ext)[1].hole);
  EXPECT_EQ((*ext)[1].offset, kBs);
  EXPECT_EQ((*ext)[1].length, 2u * kBs);
  std::string expect = std::string(kBs, 'x') + std::string(2 * kBs + 10, '\0') + std::string(kBs - 10, 'x');
  EXPECT_EQ(ReadAll(*v), expect);
  ExpectNoDanglingEntries();  // the trimmed objects must survive until the map is persisted
  ASSERT_TRUE(v->Flush().ok());
  auto blocks = raw_->List("v.");
  size_t n = 0;
  for (auto& o : *blocks) n += o.find(".b.") != std::string::npos;
  EXPECT_EQ(n, 2u);
  // Write after trim, before flush: the pending delete must not eat the new data.
  ASSERT_TRUE(v->Trim(0, kBs).ok());
  WriteAt(*v, 7, "new");
  ASSERT_TRUE(v->Flush().ok());
  std::string first(kBs, '\0');
  first.replace(7, 3, "new");
  std::string got(kBs, 'y');
  ASSERT_TRUE(v->Read(0, std::span<char>(got.data(), got.size())).ok());
  EXPECT_EQ(got, first);
}

TEST_P(VolumeTest, WriteZeroesNoHoleKeepsAllocation) {
  ASSERT_TRUE(cat_->Create("d", 2 * kBs, kBs).ok());
  auto v = Open("d");
  ASSERT_TRUE(v->WriteZeroes(0, kBs, /*may_trim=*/false).ok());
  auto ext = v->Extents(0, 2 * kBs);
  ASSERT_EQ(ext->size(), 2u);
  EXPECT_FALSE((*ext)[0].hole);
  EXPECT_TRUE((*ext)[1].hole);
  WriteAt(*v, kBs, std::string(kBs, 'q'));
  ASSERT_TRUE(v->WriteZeroes(kBs + 1, 10, true).ok());
  std::string got(2 * kBs, 'y');
  ASSERT_TRUE(v->Read(0, std::span<char>(got.data(), got.size())).ok());
  std::string expect = std::string(kBs, '\0') + "q" + std::string(10, '\0') + std::string(kBs - 11, 'q');
  EXPECT_EQ(got, expect);
}

TEST_P(VolumeTest, RenameKeepsDataAndSnapshots) {
  ASSERT_TRUE(cat_->Create("a", kBs, kBs).ok());
  {
    auto v = Open("a");
    WriteAt(*v, 0, "data");
  }
  ASSERT_TRUE(cat_->CreateSnapshot("a", "s").ok());
  ASSERT_TRUE(cat_->Create("c", kBs, kBs).ok());
  EXPECT_EQ(cat_->Rename("a", "c").code(), Code::kAlreadyExists);
  EXPECT_EQ(cat_->Rename("zz", "q").code(), Code::kNotFound);
  {
    // Open for writing (by a daemon, say): a rename would let it be opened twice.
    auto v = Open("a");
    EXPECT_EQ(cat_->Rename("a", "b").code(), Code::kBusy);
    EXPECT_TRUE(cat_->Info("a").ok());
  }
  ASSERT_TRUE(cat_->Rename("a", "b").ok());
  EXPECT_EQ(cat_->Info("a").status().code(), Code::kNotFound);
  ASSERT_TRUE(cat_->Rename("b", "a").ok()) << "the lock was left taken";
  ASSERT_TRUE(cat_->Rename("a", "b").ok());
  EXPECT_EQ(ReadSpec("b").substr(0, 4), "data");
  EXPECT_EQ(ReadSpec("b@s").substr(0, 4), "data");
}

TEST_P(VolumeTest, BadInputIsRefusedAndLeavesNothing) {
  EXPECT_EQ(cat_->Create("bad/name", kBs).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create("-x", kBs).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create("", kBs).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create(std::string(101, 'a'), kBs).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create("x", 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create("x", 1000).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create("x", kBs, 3 * kBs).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create("x", kBs, 32 * 1024).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Create("x", kBs, 128u << 20).code(), Code::kInvalidArgument);
  EXPECT_EQ(cat_->Info("missing").status().code(), Code::kNotFound);
  EXPECT_EQ(cat_->Open("missing").status().code(), Code::kNotFound);
  EXPECT_EQ(cat_->Remove("missing").code(), Code::kNotFound);
  EXPECT_EQ(cat_->Clone("missing", "s", "n").code(), Code::kNotFound);
  auto all = raw_->List("");
  EXPECT_TRUE(all->empty()) << "nothing half-written";
  ASSERT_TRUE(cat_->Create("x", kBs).ok());
  EXPECT_EQ(cat_->Create("x", kBs).code(), Code::kAlreadyExists);
  EXPECT_EQ(cat_->Info("x@nosnap").status().code(), Code::kNotFound);
  EXPECT_EQ(cat_->Clone("x", "nosnap", "n").code(), Code::kNotFound);
  auto v = Open("x");
  char buf[16];
  EXPECT_EQ(v->Read(kBs - 8, std::span<char>(buf, 16)).code(), Code::kInvalidArgument);
  EXPECT_EQ(v->Write(kBs, std::span<const char>(buf, 1)).code(), Code::kInvalidArgument);
  EXPECT_EQ(v->Trim(UINT64_MAX - 1, 4).code(), Code::kInvalidArgument);
}

TEST_P(VolumeTest, OneWriterAtATime) {
  ASSERT_TRUE(cat_->Create("d", kBs, kBs).ok());
  auto v = Open("d");
  OpenOptions other;
  other.owner = "someone-else";
  auto second = cat_->Open("d", other);
  EXPECT_EQ(second.status().code(), Code::kBusy);
  EXPECT_NE(second.status().message().find("open for writing"), std::string::npos);
  EXPECT_EQ(cat_->CreateSnapshot("d", "s").code(), Code::kBusy);
  EXPECT_TRUE(Open("d", /*read_only=*/true) != nullptr) << "readers are fine";
  ASSERT_TRUE(v->Close().ok());
  EXPECT_TRUE(cat_->Open("d", other).ok());
}

// A writer whose lease lapsed (another owner took the lock over) must stop writing: two
// writers never interleave.
TEST_P(VolumeTest, WriterThatLostItsLeaseIsFenced) {
  ASSERT_TRUE(cat_->Create("d", kBs, kBs).ok());
  OpenOptions first;
  first.owner = "first";
  first.lease_ms = 300;
  auto v = std::move(*cat_->Open("d", first));
  WriteAt(*v, 0, "mine");
  // As if the first writer had stalled past its lease and a second one took over: the
  // lock object is replaced under it.
  auto lock_name = "v." + cat_->Info("d")->id + ".lock";
  ASSERT_NO_FATAL_FAILURE(TakeOverLock(*raw_, lock_name, "second"));
  clock_->Advance(400);  // past the lease; the keeper's renewals find "second" there
  Status st = v->Write(0, std::span<const char>("late", 4));
  EXPECT_EQ(st.code(), Code::kIOError) << st.ToString();
  EXPECT_EQ(v->Flush().code(), Code::kIOError);
  EXPECT_EQ(v->Close().code(), Code::kIOError) << "unflushed data must not be dropped silently";
  auto holder = cat_->LockHolder("d");
  ASSERT_TRUE(holder.ok());
  EXPECT_EQ(holder->owner, "second") << "a fenced writer must not release someone else's lock";
}

TEST_P(VolumeTest, CorruptChunkIsReportedByName) {
  ASSERT_TRUE(cat_->Create("d", kBs, kBs).ok());
  {
    auto v = Open("d");
    WriteAt(*v, 0, "x");
  }
  auto maps = raw_->List("v.");
  std::string chunk;
  for (auto& o : *maps)
    if (o.find(".map.") != std::string::npos) chunk = o;
  ASSERT_FALSE(chunk.empty());
  std::string bytes = *raw_->Get(chunk);
  bytes[bytes.size() / 2] ^= 0xff;
  ASSERT_TRUE(raw_->Put(chunk, bytes).ok());
  auto v = Open("d", true);
  char c;
  Status st = v->Read(0, std::span<char>(&c, 1));
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_NE(st.message().find(chunk), std::string::npos) << st.ToString();
}

TEST_P(VolumeTest, ConcurrentWritersToOneVolume) {
  ASSERT_TRUE(cat_->Create("d", 32 * kBs, kBs).ok());
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s").ok());
  auto v = Open("d");
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 64; i++) {
        uint64_t block = (t * 64 + i) % 32;
        uint64_t off = block * kBs + static_cast<uint64_t>(t) * 4096;  // each thread its own 4K slot
        std::string data = Pattern(4096, t);
        ASSERT_TRUE(v->Write(off, std::span<const char>(data.data(), data.size())).ok());
        if (i % 16 == 0) {
          ASSERT_TRUE(v->Flush().ok());
        }
      }
    });
  for (auto& th : threads) th.join();
  std::string all = ReadAll(*v);
  for (int t = 0; t < 8; t++)
    for (uint64_t block = 0; block < 32; block++)
      ASSERT_EQ(all.substr(block * kBs + t * 4096, 4096), Pattern(4096, t)) << "thread " << t << " block " << block;
}

// ReadAsync across blocks, holes and a snapshot's shared objects reads what Read reads;
// on an asynchronous store it returns before its data is there.
TEST_P(VolumeTest, ReadAsyncReadsWhatReadReads) {
  ASSERT_TRUE(cat_->Create("r", 8 * kBs, kBs).ok());
  auto v = Open("r");
  EXPECT_EQ(testing::Fast(*v).fast_paths().async_reads, GetParam() == "async");
  WriteAt(*v, kBs - 100, Pattern(3 * kBs, 1));  // blocks 0-3; 4-7 stay holes
  ASSERT_TRUE(v->Flush().ok());
  ASSERT_TRUE(v->CreateSnapshot("s").ok());
  WriteAt(*v, 2 * kBs + 7, Pattern(100, 2));  // copy-up of block 2
  std::string expect = ReadAll(*v);
  std::vector<std::string> got(16, std::string(6 * kBs, 'x'));
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  for (size_t i = 0; i < got.size(); i++) {
    uint64_t off = i * 4099;  // unaligned, each across 5-6 blocks including holes
    testing::Fast(*v).ReadAsync(off, std::span<char>(got[i].data(), got[i].size()), [&, i, off](Status st) {
      EXPECT_TRUE(st.ok()) << st.ToString();
      EXPECT_EQ(got[i], expect.substr(off, got[i].size())) << "read " << i;
      std::lock_guard lock(mu);
      finished++;
      cv.notify_one();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == static_cast<int>(got.size()); });
  }
  // Out of range: the error comes through `done`, never a crash or a hang.
  Status bad;
  testing::Fast(*v).ReadAsync(8 * kBs - 10, std::span<char>(got[0].data(), 20), [&](Status st) {
    std::lock_guard l(mu);
    bad = st;
    finished++;
    cv.notify_one();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return finished == static_cast<int>(got.size()) + 1; });
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
}

// A new volume of `blocks` blocks in a catalog over the store at `uri`, opened read-write
// (the catalog stays alive in *cat). Null after a test failure.
std::unique_ptr<Volume> NewVolume(const std::string& uri, uint64_t blocks, std::unique_ptr<Catalog>* cat,
                                  std::shared_ptr<ObjectStore>* store_out = nullptr) {
  auto store = OpenStore(uri);
  EXPECT_TRUE(store.ok()) << uri;
  if (!store.ok()) return nullptr;
  if (store_out) *store_out = *store;
  auto opened = Catalog::Open(*store);
  EXPECT_TRUE(opened.ok());
  if (!opened.ok()) return nullptr;
  *cat = std::move(*opened);
  EXPECT_TRUE((*cat)->Create("v", blocks * kBs, kBs).ok());
  auto v = (*cat)->Open("v");
  EXPECT_TRUE(v.ok());
  return v.ok() ? std::move(*v) : nullptr;
}

// A snapshot drains asynchronous reads in flight before it proceeds, and reads started
// against a snapshot's objects still find them.
TEST(VolumeAsyncTest, SnapshotAndCloseWaitForAsyncReadsInFlight) {
  std::unique_ptr<Catalog> cat;
  auto v = NewVolume("delay:ms=150&ops=read&async=2+mem:", 4, &cat);
  ASSERT_TRUE(v);
  std::string data = Pattern(4 * kBs, 3);
  ASSERT_TRUE(v->Write(0, std::span<const char>(data.data(), data.size())).ok());
  std::string got(4 * kBs, 'x');
  std::atomic<bool> read_done{false};
  testing::Fast(*v).ReadAsync(0, std::span<char>(got.data(), got.size()), [&](Status st) {
    EXPECT_TRUE(st.ok()) << st.ToString();
    read_done = true;
  });
  EXPECT_FALSE(read_done.load());  // 150 ms per object read, on the store's threads
  ASSERT_TRUE(v->CreateSnapshot("s").ok());
  // The snapshot needed the gate alone: the read's blocks had all completed by then
  // (`done` itself may still be finishing).
  for (int i = 0; i < 1000 && !read_done; i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(read_done.load());
  EXPECT_EQ(got, data);
  std::string again(4 * kBs, 'x');
  std::atomic<bool> again_done{false};
  testing::Fast(*v).ReadAsync(0, std::span<char>(again.data(), again.size()), [&](Status st) {
    EXPECT_TRUE(st.ok()) << st.ToString();
    again_done = true;
  });
  ASSERT_TRUE(v->Close().ok());
  for (int i = 0; i < 1000 && !again_done; i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(again_done.load());
  EXPECT_EQ(again, data);
}

// Reads racing trims of the same blocks on an asynchronous store: each read sees old data
// or zeros per block, never an error (a trimmed object may vanish under a read in flight).
TEST(VolumeAsyncTest, AsyncReadsRacingTrimsNeverFail) {
  std::unique_ptr<Catalog> cat;
  auto v = NewVolume("delay:ms=0&jitter=1&ops=read&async=3+mem:", 16, &cat);
  ASSERT_TRUE(v);
  std::string block = Pattern(kBs, 4);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 300; i++) {
      uint64_t b = i % 16;
      ASSERT_TRUE(v->Write(b * kBs, std::span<const char>(block.data(), block.size())).ok());
      ASSERT_TRUE(v->Trim(b * kBs, kBs).ok());
      if (i % 20 == 0) {
        ASSERT_TRUE(v->Flush().ok());  // deletes trimmed objects
      }
    }
    stop = true;
  });
  std::atomic<int> inflight{0}, failures{0}, reads{0};
  std::vector<std::string> bufs(8, std::string(kBs, 'x'));
  while (!stop) {
    for (auto& buf : bufs) {
      inflight++;
      uint64_t b = reads++ % 16;
      testing::Fast(*v).ReadAsync(b * kBs, std::span<char>(buf.data(), buf.size()), [&, b](Status st) {
        if (!st.ok()) {
          failures++;
          ADD_FAILURE() << "block " << b << ": " << st.ToString();
        } else if (buf != block && buf != std::string(kBs, '\0')) {
          // Whole-block reads: each sees the block written or trimmed, never a mix.
          failures++;
          ADD_FAILURE() << "block " << b << ": torn read";
        }
        inflight--;
      });
    }
    while (inflight > 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

// A process that writes, flushes and dies without closing: what the flush covered is there,
// and the map points only at objects that exist.
// Needs a store shared across processes: the directory store only.
class DirVolumeTest : public VolumeTest {};

TEST_P(DirVolumeTest, ProcessCrashAfterFlushKeepsFlushedData) {
  ASSERT_TRUE(cat_->Create("d", 16 * kBs, kBs).ok());
  pid_t pid = fork();
  if (pid == 0) {
    auto store = OpenStore("dir:" + dir_.path());
    auto cat = Catalog::Open(*store);
    OpenOptions o;
    o.owner = "child";
    o.lease_ms = 300;
    auto v = (*cat)->Open("d", o);
    if (!v.ok()) _exit(2);
    std::string a = Pattern(8 * kBs, 11);
    if (!(*v)->Write(0, std::span<const char>(a.data(), a.size())).ok()) _exit(3);
    if (!(*v)->Flush().ok()) _exit(4);
    std::string b = Pattern(8 * kBs, 12);  // never flushed
    (*v)->Write(8 * kBs, std::span<const char>(b.data(), b.size()));
    _exit(0);  // no Close, no destructors: as if killed
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  usleep(400 * 1000);  // let the child's lease run out
  auto v = Open("d");  // takes over the expired lock
  ASSERT_TRUE(v != nullptr);
  EXPECT_EQ(ReadAll(*v).substr(0, 8 * kBs), Pattern(8 * kBs, 11));
  ExpectNoDanglingEntries();
}

// Waits for an asynchronous call's `done` and returns its status.
struct AsyncResult {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Status> status;
  Done Callback() {
    return [this](Status st) {
      std::lock_guard lock(mu);
      status = std::move(st);
      cv.notify_all();
    };
  }
  Status Wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return status.has_value(); });
    return *status;
  }
  bool done() {
    std::lock_guard lock(mu);
    return status.has_value();
  }
};

// `data` must outlive the write (not a temporary) when this returns true.
bool TryWriteAsync(Volume& v, uint64_t offset, const std::string& data, AsyncResult* r) {
  return testing::Fast(v).TryWriteAsync(offset, std::span<const char>(data.data(), data.size()), r->Callback());
}

// Asynchronous writes go only into blocks the volume already owns: holes and blocks shared
// with a snapshot take the blocking path (false, nothing done), as do writes on a store
// that completes inline, out of range, or on a read-only volume.
TEST(VolumeAsyncTest, AsyncWritesOnlyIntoBlocksTheVolumeOwns) {
  std::unique_ptr<Catalog> cat;
  auto v = NewVolume("delay:ms=0&async=2+mem:", 8, &cat);
  ASSERT_TRUE(v);
  const std::string a = Pattern(2 * kBs, 31);
  AsyncResult hole;
  EXPECT_FALSE(TryWriteAsync(*v, 100, "x", &hole));
  ASSERT_TRUE(v->Write(0, std::span<const char>(a.data(), a.size())).ok());  // blocks 0 and 1
  const std::string b = Pattern(kBs, 32);
  AsyncResult across;
  ASSERT_TRUE(TryWriteAsync(*v, kBs / 2, b, &across));  // half of 0, half of 1
  ASSERT_TRUE(across.Wait().ok());
  std::string expect = a;
  expect.replace(kBs / 2, b.size(), b);
  std::string got(2 * kBs, 'x');
  ASSERT_TRUE(v->Read(0, std::span<char>(got.data(), got.size())).ok());
  EXPECT_EQ(got, expect);
  AsyncResult partly_hole;
  EXPECT_FALSE(TryWriteAsync(*v, 2 * kBs - 10, std::string(20, 'h'), &partly_hole));  // block 2 is a hole
  // The pin on block 1 was given back: trimming it does not wait forever.
  ASSERT_TRUE(v->Trim(kBs, kBs).ok());
  AsyncResult beyond;
  EXPECT_FALSE(TryWriteAsync(*v, 8 * kBs - 1, "yy", &beyond));
  ASSERT_TRUE(v->CreateSnapshot("s").ok());
  AsyncResult shared;
  EXPECT_FALSE(TryWriteAsync(*v, 0, "z", &shared));  // block 0 is the snapshot's now
  ASSERT_TRUE(v->Write(0, std::span<const char>("z", 1)).ok());  // copy-up
  ASSERT_TRUE(v->Flush().ok());  // a deferred copy-up is done by now: the block is the volume's
  AsyncResult owned;
  const std::string q = "q";  // read by the store's thread after the call returns
  ASSERT_TRUE(TryWriteAsync(*v, 1, q, &owned));
  ASSERT_TRUE(owned.Wait().ok());
  ASSERT_TRUE(v->Read(0, std::span<char>(got.data(), 2)).ok());
  EXPECT_EQ(got.substr(0, 2), "zq");
  EXPECT_FALSE(hole.done() || partly_hole.done() || beyond.done() || shared.done());
  ASSERT_TRUE(v->Close().ok());
  auto ro = cat->Open("v@s");
  ASSERT_TRUE(ro.ok());
  AsyncResult read_only;
  EXPECT_FALSE(TryWriteAsync(**ro, 0, "r", &read_only));
  std::unique_ptr<Catalog> inline_cat;
  auto inline_v = NewVolume("mem:", 2, &inline_cat);
  ASSERT_TRUE(inline_v);
  ASSERT_TRUE(inline_v->Write(0, std::span<const char>("w", 1)).ok());
  AsyncResult on_inline;
  EXPECT_FALSE(TryWriteAsync(*inline_v, 0, "w", &on_inline));
}

// A trim of a block waits for asynchronous writes into it still in flight: else the write
// would land after the trim's delete and leave an object nothing references.
TEST(VolumeAsyncTest, TrimWaitsForAsyncWritesInFlight) {
  std::unique_ptr<Catalog> cat;
  std::shared_ptr<ObjectStore> store;
  auto v = NewVolume("delay:ms=150&ops=write&async=2+mem:", 4, &cat, &store);
  ASSERT_TRUE(v);
  const std::string data = Pattern(kBs, 33);
  ASSERT_TRUE(v->Write(0, std::span<const char>(data.data(), data.size())).ok());
  ASSERT_TRUE(v->Flush().ok());
  AsyncResult write;
  const std::string late = "late";
  ASSERT_TRUE(TryWriteAsync(*v, 10, late, &write));
  EXPECT_FALSE(write.done());  // 150 ms on the store's thread
  ASSERT_TRUE(v->Trim(0, kBs).ok());
  // Deletes the trimmed block's object. Had the trim not waited, the write would still be in
  // flight here and bring the object back after this delete (`done` itself may still be
  // finishing: the store's part is what the trim waits for).
  ASSERT_TRUE(v->Flush().ok());
  EXPECT_TRUE(write.Wait().ok());
  std::string got(kBs, 'x');
  ASSERT_TRUE(v->Read(0, std::span<char>(got.data(), got.size())).ok());
  EXPECT_EQ(got, std::string(kBs, '\0'));
  ASSERT_TRUE(v->Close().ok());
  auto report = CheckStore(*store, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE(report->unreferenced.empty()) << report->unreferenced.front();
}

// Many asynchronous writes in flight while another thread writes, trims and flushes the
// same blocks (and TSan watches): every write is answered, and nothing is left behind.
TEST(VolumeAsyncTest, AsyncWritesRacingTrimsAndFlushes) {
  std::unique_ptr<Catalog> cat;
  std::shared_ptr<ObjectStore> store;
  auto v = NewVolume("delay:ms=0&jitter=1&async=3+mem:", 16, &cat, &store);
  ASSERT_TRUE(v);
  const std::string block = Pattern(kBs, 34);
  for (uint64_t b = 0; b < 16; b++) ASSERT_TRUE(v->Write(b * kBs, std::span<const char>(block.data(), block.size())).ok());
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int i = 0; i < 200; i++) {
      uint64_t b = (i * 7) % 16;
      ASSERT_TRUE(v->Trim(b * kBs, kBs).ok());
      ASSERT_TRUE(v->Write(b * kBs, std::span<const char>(block.data(), block.size())).ok());
      if (i % 10 == 0) {
        ASSERT_TRUE(v->Flush().ok());
      }
    }
    stop = true;
  });
  const std::string small = Pattern(4096, 35);
  std::atomic<int> inflight{0}, failures{0}, started{0};
  while (!stop) {
    for (uint64_t b = 0; b < 16; b++) {
      inflight++;
      bool ok = testing::Fast(*v).TryWriteAsync(b * kBs + 4096, std::span<const char>(small.data(), small.size()), [&](Status st) {
        if (!st.ok()) {
          failures++;
          ADD_FAILURE() << st.ToString();
        }
        inflight--;
      });
      if (ok) {
        started++;
      } else {
        inflight--;  // a trimmed block: the blocking path's business
      }
    }
    while (inflight > 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  churn.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(started.load(), 0);
  ASSERT_TRUE(v->Close().ok());
  auto report = CheckStore(*store, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE(report->unreferenced.empty()) << report->unreferenced.size() << " left behind";
}

// Zero-copy reads of a volume on the directory store (the CountingStore wrapper reads
// through Read, so this opens the store itself): the pipe carries what Read returns over
// data, holes, blocks shared with a parent and objects shorter than their block.
TEST_P(DirVolumeTest, PipeReadsCarryWhatReadReturns) {
  auto cat = Catalog::Open(raw_);
  ASSERT_TRUE(cat.ok());
  ASSERT_TRUE((*cat)->Create("p", 8 * kBs, kBs).ok());
  {
    auto v = (*cat)->Open("p");
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(testing::Fast(**v).fast_paths().pipe_reads);
    WriteAt(**v, 0, Pattern(2 * kBs, 21));
    WriteAt(**v, 4 * kBs + 100, Pattern(1000, 22));  // an object of 1100 bytes for a 64 KiB block
    ASSERT_TRUE((*v)->CreateSnapshot("s").ok());
  }
  ASSERT_TRUE((*cat)->Clone("p", "s", "c").ok());
  auto c = (*cat)->Open("c");
  ASSERT_TRUE(c.ok());
  WriteAt(**c, kBs + 5, Pattern(3000, 23));  // copy-up of block 1; block 0 stays shared
  ThreadPipe* pipe = ThreadPipe::Get();
  ASSERT_NE(pipe, nullptr);
  for (auto [offset, length] : {std::pair<uint64_t, uint64_t>{0, 8 * kBs}, {kBs - 10, 20}, {3 * kBs, 2 * kBs + 7},
                                {4 * kBs + 1000, 500}, {7 * kBs, kBs}}) {
    if (length > pipe->capacity()) continue;
    std::string want(length, 'y');
    ASSERT_TRUE((*c)->Read(offset, std::span<char>(want.data(), want.size())).ok());
    Status st = testing::Fast(**c).ReadToPipe(offset, length, pipe->write_fd());
    ASSERT_TRUE(st.ok()) << st.ToString();
    std::string got(length, 'x');
    for (size_t done = 0; done < length;) {
      ssize_t r = ::read(pipe->read_fd(), got.data() + done, length - done);
      ASSERT_GT(r, 0);
      done += static_cast<size_t>(r);
    }
    EXPECT_EQ(got, want) << offset << "+" << length;
  }
  EXPECT_EQ(testing::Fast(**c).ReadToPipe(8 * kBs - 1, 2, pipe->write_fd()).code(), Code::kInvalidArgument);
}

// Elsewhere (a decorated store, memory, asynchronous) there are no zero-copy reads.
TEST_P(VolumeTest, PipeReadsOnlyWhereTheStoreSplices) {
  ASSERT_TRUE(cat_->Create("n", 2 * kBs, kBs).ok());
  auto v = Open("n");
  ASSERT_TRUE(v != nullptr);
  EXPECT_FALSE(testing::Fast(*v).fast_paths().pipe_reads);  // every store here is behind CountingStore
  EXPECT_EQ(testing::Fast(*v).ReadToPipe(0, 4096, -1).code(), Code::kNotSupported);
}

INSTANTIATE_TEST_SUITE_P(Stores, VolumeTest, ::testing::Values("mem", "dir", "async"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Stores, DirVolumeTest, ::testing::Values("dir"),
                         [](const auto& info) { return info.param; });

// ---- deferred copy-up ----

// Copies wait until the test opens the gate.
class GatedCopyStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<int> waiting{0};
  void OpenGate() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void Copy(const std::string& s, const std::string& d, Done done) override {
    {
      std::unique_lock lock(mu_);
      waiting++;
      cv_.wait(lock, [&] { return open_; });
      waiting--;
    }
    ForwardingStore::Copy(s, d, std::move(done));
  }
  std::atomic<int> writes{0};        // data-path writes passed on
  std::atomic<int> block_writes{0};  // of those, into block objects ("v.<id>.b.<epoch>.<block>")
  void Write(const std::string& n, uint64_t off, std::span<const char> data, bool fresh, Done done) override {
    writes++;
    if (n.find(".b.") != std::string::npos) block_writes++;
    ForwardingStore::Write(n, off, data, fresh, std::move(done));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Volume "v" of `blocks` blocks on a memory store (or the store `uri`, e.g. a natively
// asynchronous one) whose copies wait at a gate, open, with copy-ups deferred to copier threads.
struct GatedVolume {
  explicit GatedVolume(uint64_t blocks, const std::string& uri = "mem:") : mem(*OpenStore(uri)) {
    auto cat_or = Catalog::Open(gated, testing::ModeOptions("background"));
    EXPECT_TRUE(cat_or.ok());
    cat = std::move(*cat_or);
    EXPECT_TRUE(cat->Create("v", blocks * kBs, kBs).ok());
    auto v = cat->Open("v");
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (v.ok()) vol = std::move(*v);
  }
  std::shared_ptr<ObjectStore> mem;
  std::shared_ptr<GatedCopyStore> gated = std::make_shared<GatedCopyStore>(mem);
  std::unique_ptr<Catalog> cat;
  std::unique_ptr<Volume> vol;
};

TEST(DeferredCopyUpTest, AWriteIntoASharedBlockDoesNotWaitForTheCopy) {
  GatedVolume g(4);
  ASSERT_TRUE(g.vol);
  Volume& v = *g.vol;
  auto& gated = g.gated;
  auto& cat = g.cat;
  const std::string base = Pattern(4 * kBs, 40);
  ASSERT_TRUE(v.Write(0, std::span<const char>(base.data(), base.size())).ok());
  ASSERT_TRUE(v.CreateSnapshot("s").ok());  // every block is now shared with s

  const std::string mine = "mine";
  auto write = std::async(std::launch::async, [&] { return v.Write(100, std::span<const char>(mine.data(), 4)); });
  bool returned = write.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!returned) gated->OpenGate();  // a copy-up before the write returns: let it finish, then fail
  ASSERT_TRUE(returned) << "the write waited for the copy of its block";
  ASSERT_TRUE(write.get().ok());

  // A copier waits at the gate; a read of that block waits for it, one of another block does not.
  for (int i = 0; i < 1000 && gated->waiting.load() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(gated->waiting.load(), 1);
  std::string got(kBs, 'x');
  auto read = std::async(std::launch::async, [&] { return v.Read(0, std::span<char>(got.data(), got.size())); });
  EXPECT_EQ(read.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  std::string other(kBs, 'x');
  ASSERT_TRUE(v.Read(2 * kBs, std::span<char>(other.data(), other.size())).ok());
  EXPECT_EQ(other, base.substr(2 * kBs, kBs));

  gated->OpenGate();
  ASSERT_TRUE(read.get().ok());
  std::string expect = base.substr(0, kBs);
  expect.replace(100, 4, mine);
  EXPECT_EQ(got, expect);
  ASSERT_TRUE(v.Flush().ok());
  ASSERT_TRUE(v.Close().ok());
  OpenOptions ro;
  ro.read_only = true;
  auto snap = cat->Open("v@s", ro);
  ASSERT_TRUE(snap.ok());
  std::string frozen(4 * kBs, 'x');
  ASSERT_TRUE((*snap)->Read(0, std::span<char>(frozen.data(), frozen.size())).ok());
  EXPECT_EQ(frozen, base);
  auto report = CheckStore(*g.mem, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE(report->unreferenced.empty()) << report->unreferenced.front();
}

// Starts v.ReadAsync into `out`; the future has its result.
std::future<Status> StartReadAsync(Volume& v, uint64_t off, std::string* out) {
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  testing::Fast(v).ReadAsync(off, std::span<char>(out->data(), out->size()), [p](Status st) { p->set_value(std::move(st)); });
  return f;
}

// On a natively asynchronous store (RADOS's kind) an asynchronous read of a block whose
// copy-up is pending is answered once that is done, with the held write in it; the call
// itself never waits (its caller may be a store completion), and other blocks are read as
// usual meanwhile.
TEST(DeferredCopyUpTest, AsyncReadsOfABlockWithAPendingCopyUpWaitOffTheCallersThread) {
  GatedVolume g(4, "delay:ms=0&async=2+mem:");
  ASSERT_TRUE(g.vol);
  Volume& v = *g.vol;
  ASSERT_TRUE(testing::Fast(v).fast_paths().async_reads);
  const std::string base = Pattern(4 * kBs, 42);
  ASSERT_TRUE(v.Write(0, std::span<const char>(base.data(), base.size())).ok());
  ASSERT_TRUE(v.CreateSnapshot("s").ok());
  ASSERT_TRUE(v.Write(kBs + 100, std::span<const char>("mine", 4)).ok());  // held
  for (int i = 0; i < 1000 && g.gated->waiting.load() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(g.gated->waiting.load(), 1);  // block 1's copy, at the gate

  std::string other(kBs, 'x');
  ASSERT_TRUE(StartReadAsync(v, 2 * kBs, &other).get().ok());
  EXPECT_EQ(other, base.substr(2 * kBs, kBs));
  std::string got(2 * kBs, 'x');  // blocks 0 and 1: block 1 pending
  std::future<std::future<Status>> started = std::async(std::launch::async, [&] { return StartReadAsync(v, 0, &got); });
  bool returned = started.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!returned) g.gated->OpenGate();  // let the blocked call finish, then fail
  ASSERT_TRUE(returned) << "ReadAsync waited for the copy-up on the caller's thread";
  std::future<Status> result = started.get();
  EXPECT_EQ(result.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout) << "answered before the copy-up";
  g.gated->OpenGate();
  ASSERT_TRUE(result.get().ok());
  std::string expect = base.substr(0, 2 * kBs);
  expect.replace(kBs + 100, 4, "mine");
  EXPECT_TRUE(got == expect) << "the read missed the held write";
  ASSERT_TRUE(v.Close().ok());
}

// On an asynchronous store the held writes are applied coalesced (many in flight at once,
// completing in any order): a range written many times is written once, and where writes
// overlap the last one acknowledged wins.
TEST(DeferredCopyUpTest, HeldWritesAreAppliedCoalescedAndInOrderOnAnAsyncStore) {
  GatedVolume g(2, "delay:ms=1&jitter=3&async=4+mem:");
  ASSERT_TRUE(g.vol);
  Volume& v = *g.vol;
  const std::string base = Pattern(2 * kBs, 43);
  ASSERT_TRUE(v.Write(0, std::span<const char>(base.data(), base.size())).ok());
  ASSERT_TRUE(v.CreateSnapshot("s").ok());
  std::string model = base;
  std::mt19937_64 rng(7);
  std::vector<std::string> writes;
  for (int i = 0; i < 300; i++) {  // in block 0, overlapping, none covering the block
    uint64_t off = rng() % (kBs - 64);
    std::string data = Pattern(1 + rng() % 48, 1000 + i);
    if (i % 3 == 0) off = 4096;  // many writes to one range
    ASSERT_TRUE(v.Write(off, std::span<const char>(data.data(), data.size())).ok()) << i;
    model.replace(off, data.size(), data);
  }
  for (int i = 0; i < 1000 && g.gated->waiting.load() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(g.gated->waiting.load(), 1);  // block 0's copy, at the gate: all 300 are held
  int before = g.gated->writes.load();
  g.gated->OpenGate();
  ASSERT_TRUE(v.Flush().ok());
  int applied = g.gated->writes.load() - before;
  EXPECT_GT(applied, 0);
  EXPECT_LT(applied, 300) << "every held write was applied on its own";
  std::string got(2 * kBs, 'x');
  ASSERT_TRUE(StartReadAsync(v, 0, &got).get().ok());
  EXPECT_TRUE(got == model) << "content differs from the writes applied in order";
  ASSERT_TRUE(v.Close().ok());
}

// A block holds at most its own size of writes for a pending copy-up: past that, a writer
// waits for the copy-up (here held at the gate) instead of holding more.
TEST(DeferredCopyUpTest, HeldWritesAreBoundedByTheBlockSize) {
  GatedVolume g(2);
  ASSERT_TRUE(g.vol);
  Volume& v = *g.vol;
  auto& gated = g.gated;
  const std::string base = Pattern(kBs, 41);
  ASSERT_TRUE(v.Write(0, std::span<const char>(base.data(), base.size())).ok());
  ASSERT_TRUE(v.CreateSnapshot("s").ok());
  const std::string first(kBs / 2, 'a'), second(kBs / 2, 'b'), third(16, 'c');
  ASSERT_TRUE(v.Write(0, std::span<const char>(first.data(), first.size())).ok());  // held
  ASSERT_TRUE(v.Write(kBs / 2, std::span<const char>(second.data(), second.size())).ok());  // held: kBs in all
  auto over = std::async(std::launch::async, [&] { return v.Write(8, std::span<const char>(third.data(), third.size())); });
  bool waited = over.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout;
  gated->OpenGate();
  EXPECT_TRUE(waited) << "a block held more than its own size";
  ASSERT_TRUE(over.get().ok());
  std::string got(kBs, 'x');
  ASSERT_TRUE(v.Read(0, std::span<char>(got.data(), got.size())).ok());
  std::string expect = first + second;
  expect.replace(8, third.size(), third);
  EXPECT_EQ(got, expect);
  ASSERT_TRUE(v.Close().ok());
}

// A volume holds at most 64 MiB of writes for pending copy-ups: past that, a write into
// another shared block copies it itself (here it waits at the gate) instead of holding.
TEST(DeferredCopyUpTest, HeldWritesAreBoundedPerVolume) {
  constexpr uint64_t kVolumeBound = 64ull << 20;  // kMaxHeldBytes in open_volume.cc
  const std::string held(kBs - 1, 'h');           // under the per-block bound
  const uint64_t blocks = kVolumeBound / held.size() + 2;
  GatedVolume g(blocks);
  ASSERT_TRUE(g.vol);
  Volume& v = *g.vol;
  const std::string base = Pattern(blocks * kBs, 44);
  ASSERT_TRUE(v.Write(0, std::span<const char>(base.data(), base.size())).ok());
  ASSERT_TRUE(v.CreateSnapshot("s").ok());
  // Every write below is a first write into a shared block; all but the last are held.
  const uint64_t fit = kVolumeBound / held.size();
  auto writes = std::async(std::launch::async, [&] {
    for (uint64_t b = 0; b < fit; b++) SKERRY_RETURN_IF_ERROR(v.Write(b * kBs, std::span<const char>(held.data(), held.size())));
    return Status::OK();
  });
  bool returned = writes.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  if (!returned) g.gated->OpenGate();  // one waited for its copy: let it finish, then fail
  ASSERT_TRUE(returned) << fit << " writes were not all held";
  ASSERT_TRUE(writes.get().ok());
  auto over = std::async(std::launch::async, [&] { return v.Write(fit * kBs, std::span<const char>(held.data(), held.size())); });
  bool waited = over.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout;
  g.gated->OpenGate();
  EXPECT_TRUE(waited) << "the volume held more than " << kVolumeBound << " bytes";
  ASSERT_TRUE(over.get().ok());
  ASSERT_TRUE(v.Flush().ok());
  std::string expect = base;
  for (uint64_t b = 0; b <= fit; b++) expect.replace(b * kBs, held.size(), held);
  std::string got(blocks * kBs, 'x');
  ASSERT_TRUE(v.Read(0, std::span<char>(got.data(), got.size())).ok());
  EXPECT_TRUE(got == expect);
  ASSERT_TRUE(v.Close().ok());
}

// Runs `between` once, on the first read of an object whose name contains `match`: before
// the read reaches the store and, with `after`, once it has come back.
class ReadHookStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::string match;
  std::function<void()> before, after;
  void Read(const std::string& n, uint64_t off, std::span<char> out, ReadDone done) override {
    if (match.empty() || n.find(match) == std::string::npos) return ForwardingStore::Read(n, off, out, std::move(done));
    match.clear();
    if (before) before();
    ForwardingStore::Read(n, off, out, [this, done = std::move(done)](Result<size_t> r) {
      if (after) after();
      done(std::move(r));
    });
  }
};

// A read that finds its object gone, because a trim and a flush deleted it after the read
// looked at the map, and then finds the map naming an object of the same name again (the
// block was written anew meanwhile) must read again, not report corruption: the name is
// the same, the object is new (found in review).
void ReadWhoseObjectWasDeletedAndWrittenAgain(const std::string& uri, bool async) {
  auto mem = OpenStore(uri);
  ASSERT_TRUE(mem.ok());
  auto hook = std::make_shared<ReadHookStore>(*mem);
  auto cat = Catalog::Open(hook);
  ASSERT_TRUE(cat.ok());
  ASSERT_TRUE((*cat)->Create("v", 2 * kBs, kBs).ok());
  auto opened = (*cat)->Open("v");
  ASSERT_TRUE(opened.ok());
  Volume& v = **opened;
  const std::string old_data = Pattern(kBs, 46), new_data = Pattern(kBs, 47);
  ASSERT_TRUE(v.Write(0, std::span<const char>(old_data.data(), kBs)).ok());
  ASSERT_TRUE(v.Flush().ok());
  hook->match = ".b.";  // block 0's object
  hook->before = [&] {  // the block is trimmed and the flush deletes its object
    ASSERT_TRUE(v.Trim(0, kBs).ok());
    ASSERT_TRUE(v.Flush().ok());
  };
  hook->after = [&] {  // written anew: an object of the same name, the map as before
    ASSERT_TRUE(v.Write(0, std::span<const char>(new_data.data(), kBs)).ok());
  };
  std::string got(kBs, 'x');
  Status st;
  if (async) {  // ReadBlockAsync: the second look happens in the store's completion
    std::promise<Status> done;
    testing::Fast(v).ReadAsync(0, std::span<char>(got.data(), kBs), [&](Status s) { done.set_value(std::move(s)); });
    st = done.get_future().get();
  } else {
    st = v.Read(0, std::span<char>(got.data(), kBs));
  }
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(got == new_data);
  ASSERT_TRUE(v.Close().ok());
}

TEST(ReadRaceTest, AReadWhoseObjectWasDeletedAndWrittenAgainReadsAgain) {
  ReadWhoseObjectWasDeletedAndWrittenAgain("mem:", false);
}
TEST(ReadRaceTest, AnAsyncReadWhoseObjectWasDeletedAndWrittenAgainReadsAgain) {
  ReadWhoseObjectWasDeletedAndWrittenAgain("delay:ms=0&async=2+mem:", true);
}

// A copy-up whose copy ends after the volume's lease lapsed must not write the writes it
// holds: another owner may be writing that block by then. (The lease was checked before the
// copy and before the map change, not before writing what was held.)
TEST(DeferredCopyUpTest, HeldWritesAreNotWrittenOnceTheLeaseLapsed) {
  auto mem = OpenStore("mem:");
  ASSERT_TRUE(mem.ok());
  auto gated = std::make_shared<GatedCopyStore>(*mem);
  auto clock = std::make_shared<SimClock>();
  VolumeOptions options = testing::ModeOptions("background");
  options.clock = clock;
  auto cat = Catalog::Open(gated, options);
  ASSERT_TRUE(cat.ok());
  ASSERT_TRUE((*cat)->Create("v", 2 * kBs, kBs).ok());
  OpenOptions first;
  first.owner = "first";
  first.lease_ms = 300;
  auto opened = (*cat)->Open("v", first);
  ASSERT_TRUE(opened.ok());
  Volume& v = **opened;
  const std::string base = Pattern(kBs, 45);
  ASSERT_TRUE(v.Write(0, std::span<const char>(base.data(), base.size())).ok());
  ASSERT_TRUE(v.CreateSnapshot("s").ok());
  ASSERT_TRUE(v.Write(100, std::span<const char>("mine", 4)).ok());  // held; its copy waits at the gate
  for (int i = 0; i < 1000 && gated->waiting.load() == 0; i++) usleep(1000);
  ASSERT_EQ(gated->waiting.load(), 1) << "the copier never reached the copy";
  // Another owner takes the lock over, as after a stall past the lease.
  auto lock_name = "v." + (*cat)->Info("v")->id + ".lock";
  ASSERT_NO_FATAL_FAILURE(TakeOverLock(**mem, lock_name, "second"));
  clock->Advance(400);  // past the lease: renewals found "second" there
  const int before = gated->block_writes.load();
  gated->OpenGate();
  EXPECT_EQ(v.Flush().code(), Code::kIOError);
  EXPECT_EQ(gated->block_writes.load(), before) << "held writes reached the store after the lease lapsed";
  EXPECT_EQ(v.Close().code(), Code::kIOError);
}

// Writers, readers and trims on their own blocks while another thread keeps taking
// snapshots (which share every block again) and flushing: every read sees the writer's
// latest bytes, and the volume reopens with all of them (TSan runs it too).
TEST(DeferredCopyUpTest, ConcurrentWritesReadsTrimsWhileSnapshotsShareTheBlocksAgain) {
  auto store = OpenStore("delay:ms=0&jitter=1+mem:");
  ASSERT_TRUE(store.ok());
  auto cat = Catalog::Open(*store, testing::ModeOptions("background"));
  ASSERT_TRUE(cat.ok());
  constexpr int kThreads = 4, kBlocksEach = 4;
  constexpr uint64_t kBlocks = kThreads * kBlocksEach;
  ASSERT_TRUE((*cat)->Create("v", kBlocks * kBs, kBs).ok());
  auto opened = (*cat)->Open("v");
  ASSERT_TRUE(opened.ok());
  Volume& v = **opened;
  std::vector<std::string> model(kBlocks);
  for (uint64_t b = 0; b < kBlocks; b++) {
    model[b] = Pattern(kBs, 100 + b);
    ASSERT_TRUE(v.Write(b * kBs, std::span<const char>(model[b].data(), kBs)).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> snapshots{0};
  std::thread snapper([&] {
    for (int i = 0; !stop.load() && i < 40; i++) {
      Status st = (i % 2) ? v.Flush() : v.CreateSnapshot("s" + std::to_string(i));
      EXPECT_TRUE(st.ok()) << st.ToString();
      if (i % 2 == 0) snapshots++;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; t++) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 400; i++) {
        uint64_t b = t + kThreads * (rng() % kBlocksEach);
        std::string& m = model[b];
        uint32_t op = rng() % 10;
        if (op < 6) {
          uint64_t len = 1 + rng() % 8192, off = rng() % (kBs - len);
          std::string data = Pattern(len, rng());
          Status st = v.Write(b * kBs + off, std::span<const char>(data.data(), len));
          ASSERT_TRUE(st.ok()) << st.ToString();
          m.replace(off, len, data);
        } else if (op < 7) {
          ASSERT_TRUE(v.Trim(b * kBs, kBs).ok());
          m.assign(kBs, '\0');
        } else {
          std::string got(kBs, 'x');
          ASSERT_TRUE(v.Read(b * kBs, std::span<char>(got.data(), got.size())).ok());
          ASSERT_EQ(got, m) << "block " << b << " after step " << i;
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  stop = true;
  snapper.join();
  EXPECT_GT(snapshots.load(), 1);
  ASSERT_TRUE(v.Close().ok());
  auto again = (*cat)->Open("v");
  ASSERT_TRUE(again.ok());
  for (uint64_t b = 0; b < kBlocks; b++) {
    std::string got(kBs, 'x');
    ASSERT_TRUE((*again)->Read(b * kBs, std::span<char>(got.data(), got.size())).ok());
    EXPECT_EQ(got, model[b]) << "block " << b;
  }
  ASSERT_TRUE((*again)->Close().ok());
  auto report = CheckStore(**store, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE(report->unreferenced.empty()) << report->unreferenced.front();
}

}  // namespace
}  // namespace skerry
