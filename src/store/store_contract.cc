// The store contract suite (see store_contract.h). Each test starts from a new, empty
// store and uses only the ObjectStore interface.
#include "store/store_contract.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace skerry {

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreContractTest);

void StoreContractTest::SetUp() {
  store_ = GetParam().make();
  ASSERT_NE(store_, nullptr);
}

void StoreContractTest::TearDown() { store_.reset(); }

std::string StoreContractName(const ::testing::TestParamInfo<StoreContractParam>& info) {
  return info.param.name;
}

void PrintTo(const StoreContractParam& param, std::ostream* os) { *os << param.name; }

namespace {

// Deterministic bytes that differ per seed and per position, so misplaced data shows.
std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

std::string Zeros(size_t n) { return std::string(n, '\0'); }

// Reads [offset, offset+n); fails the test on error or a short count.
std::string ReadRange(ObjectStore& store, const std::string& name, uint64_t offset, size_t n) {
  std::string out(n, '\x55');
  Result<size_t> got = store.ReadBlocking(name, offset, std::span<char>(out.data(), out.size()));
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  if (got.ok()) {
    EXPECT_EQ(*got, n);
  }
  return out;
}

Status Write(ObjectStore& store, const std::string& name, uint64_t offset, std::string_view data,
             bool fresh = false) {
  return store.WriteBlocking(name, offset, std::span<const char>(data.data(), data.size()), fresh);
}

uint64_t SizeOf(ObjectStore& store, const std::string& name) {
  Result<ObjectInfo> info = store.Stat(name);
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  return info.ok() ? info->size : ~0ull;
}

}  // namespace

// ---- data path ----

TEST_P(StoreContractTest, WritesAreReadBackAtTheirOffsets) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(Write(s, "a", 0, "hello").ok());
  ASSERT_TRUE(Write(s, "a", 4096, "world").ok());
  EXPECT_EQ(ReadRange(s, "a", 0, 5), "hello");
  EXPECT_EQ(ReadRange(s, "a", 2, 3), "llo");
  EXPECT_EQ(ReadRange(s, "a", 4096, 5), "world");
  EXPECT_EQ(SizeOf(s, "a"), 4101u);
  ASSERT_TRUE(Write(s, "a", 1, "EL").ok());  // overwrite in place
  EXPECT_EQ(ReadRange(s, "a", 0, 5), "hELlo");
}

TEST_P(StoreContractTest, LargeWriteRoundTrips) {
  const std::string block = Pattern(4 << 20, 7);
  ASSERT_TRUE(Write(*store_, "big", 0, block).ok());
  EXPECT_EQ(ReadRange(*store_, "big", 0, block.size()), block);
  EXPECT_EQ(ReadRange(*store_, "big", 123457, 4096), block.substr(123457, 4096));
}

TEST_P(StoreContractTest, ReadOfMissingObjectIsNotFound) {
  std::string out(16, '\0');
  Result<size_t> got = store_->ReadBlocking("missing", 0, std::span<char>(out.data(), out.size()));
  EXPECT_TRUE(got.status().IsNotFound()) << got.status().ToString();
}

TEST_P(StoreContractTest, UnwrittenRangesAndThePastEndReadAsZeros) {
  ObjectStore& s = *store_;
  const std::string data = Pattern(4096, 1);
  ASSERT_TRUE(Write(s, "sparse", 65536, data).ok());
  EXPECT_EQ(SizeOf(s, "sparse"), 65536u + 4096u);
  EXPECT_EQ(ReadRange(s, "sparse", 0, 65536), Zeros(65536));
  // Straddling the end: data, then zeros, and the full length is reported.
  EXPECT_EQ(ReadRange(s, "sparse", 65536 + 4086, 100), data.substr(4086) + Zeros(90));
  EXPECT_EQ(ReadRange(s, "sparse", 1 << 20, 4096), Zeros(4096));
}

TEST_P(StoreContractTest, EmptyWriteCreatesAnEmptyObject) {
  ASSERT_TRUE(Write(*store_, "empty", 0, "").ok());
  EXPECT_EQ(SizeOf(*store_, "empty"), 0u);
  EXPECT_EQ(ReadRange(*store_, "empty", 0, 10), Zeros(10));
}

TEST_P(StoreContractTest, FreshWriteDiscardsPreviousContent) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(Write(s, "f", 0, Pattern(8192, 2)).ok());
  ASSERT_TRUE(Write(s, "f", 100, "BBBBBBBBBB", /*fresh=*/true).ok());
  EXPECT_EQ(SizeOf(s, "f"), 110u);
  EXPECT_EQ(ReadRange(s, "f", 0, 8192), Zeros(100) + "BBBBBBBBBB" + Zeros(8192 - 110));
}

TEST_P(StoreContractTest, ZeroMakesARangeReadAsZeros) {
  ObjectStore& s = *store_;
  const std::string data = Pattern(16384, 3);
  ASSERT_TRUE(Write(s, "z", 0, data).ok());
  ASSERT_TRUE(s.ZeroBlocking("z", 4096, 8192).ok());
  EXPECT_EQ(ReadRange(s, "z", 0, 16384), data.substr(0, 4096) + Zeros(8192) + data.substr(12288));
  EXPECT_EQ(SizeOf(s, "z"), 16384u);
  ASSERT_TRUE(s.ZeroBlocking("z", 1000, 10).ok());  // unaligned
  EXPECT_EQ(ReadRange(s, "z", 990, 30), data.substr(990, 10) + Zeros(10) + data.substr(1010, 10));
}

TEST_P(StoreContractTest, ZeroPastTheEndExtendsTheObject) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(Write(s, "z", 0, std::string(100, 'Z')).ok());
  ASSERT_TRUE(s.ZeroBlocking("z", 50, 1000).ok());
  EXPECT_EQ(SizeOf(s, "z"), 1050u);
  EXPECT_EQ(ReadRange(s, "z", 0, 1100), std::string(50, 'Z') + Zeros(1050));
}

TEST_P(StoreContractTest, ZeroOfMissingObjectIsNotFound) {
  EXPECT_TRUE(store_->ZeroBlocking("missing", 0, 4096).IsNotFound());
}

TEST_P(StoreContractTest, CopyMakesAnIndependentCopy) {
  ObjectStore& s = *store_;
  const std::string a = Pattern(4096, 4), b = Pattern(4096, 5);
  ASSERT_TRUE(Write(s, "src", 0, a).ok());
  ASSERT_TRUE(Write(s, "src", 1 << 20, b).ok());
  ASSERT_TRUE(s.Truncate("src", 4 << 20).ok());  // a hole at the end too
  ASSERT_TRUE(Write(s, "dst", 0, Pattern(5 << 20, 6)).ok());  // replaced, not merged

  ASSERT_TRUE(s.CopyBlocking("src", "dst").ok());
  EXPECT_EQ(SizeOf(s, "dst"), 4u << 20);
  EXPECT_EQ(ReadRange(s, "dst", 0, 4 << 20), ReadRange(s, "src", 0, 4 << 20));
  EXPECT_EQ(ReadRange(s, "dst", (1 << 20) - 8, 16), Zeros(8) + b.substr(0, 8));

  ASSERT_TRUE(Write(s, "dst", 0, "changed").ok());
  EXPECT_EQ(ReadRange(s, "src", 0, 4096), a);
  EXPECT_TRUE(s.CopyBlocking("src", "src").ok());
  EXPECT_EQ(ReadRange(s, "src", 0, 4096), a);
}

TEST_P(StoreContractTest, CopyOfMissingSourceIsNotFound) {
  EXPECT_TRUE(store_->CopyBlocking("missing", "dst").IsNotFound());
  EXPECT_TRUE(store_->Stat("dst").status().IsNotFound());
}

TEST_P(StoreContractTest, SyncAcceptsWrittenCopiedAndMissingObjects) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(Write(s, "w", 0, "data").ok());
  ASSERT_TRUE(s.CopyBlocking("w", "c").ok());
  EXPECT_TRUE(s.SyncBlocking({"w", "c", "never-written"}).ok());
  EXPECT_TRUE(s.SyncBlocking({}).ok());
  EXPECT_EQ(ReadRange(s, "c", 0, 4), "data");
}

// What the layers above rely on for copy-up: after Copy and Sync(dst) the copy, holes
// and size included, is in the store for whoever opens it next, whatever happens to src.
// A persistent store is opened again from its URI (a second instance on the same data).
TEST_P(StoreContractTest, CopyFollowedBySyncSurvivesReopening) {
  ObjectStore& s = *store_;
  const std::string a = Pattern(8192, 21), b = Pattern(4096, 22);
  ASSERT_TRUE(Write(s, "shared", 0, a).ok());
  ASSERT_TRUE(Write(s, "shared", 3 << 20, b).ok());
  ASSERT_TRUE(s.Truncate("shared", 4 << 20).ok());
  ASSERT_TRUE(s.SyncBlocking({"shared"}).ok());
  ASSERT_TRUE(Write(s, "private", 0, Pattern(1 << 20, 23)).ok());  // replaced by the copy
  ASSERT_TRUE(s.SyncBlocking({"private"}).ok());

  ASSERT_TRUE(s.CopyBlocking("shared", "private").ok());
  ASSERT_TRUE(s.SyncBlocking({"private"}).ok());
  ASSERT_TRUE(Write(s, "shared", 0, "later").ok());  // after the copy: not in it
  ASSERT_TRUE(s.Delete("shared").ok());

  std::shared_ptr<ObjectStore> again = store_;
  if (s.capabilities().persistent) {
    Result<std::shared_ptr<ObjectStore>> reopened = OpenStore(s.uri());
    ASSERT_TRUE(reopened.ok()) << s.uri() << ": " << reopened.status().ToString();
    again = *reopened;
  }
  EXPECT_EQ(SizeOf(*again, "private"), 4u << 20);
  EXPECT_EQ(ReadRange(*again, "private", 0, 8192), a);
  EXPECT_EQ(ReadRange(*again, "private", 8192, (3 << 20) - 8192), Zeros((3 << 20) - 8192));
  EXPECT_EQ(ReadRange(*again, "private", 3 << 20, 4096), b);
  EXPECT_EQ(ReadRange(*again, "private", (3 << 20) + 4096, (1 << 20) - 4096), Zeros((1 << 20) - 4096));
  EXPECT_EQ(*again->List("pri"), std::vector<std::string>{"private"});
}

TEST_P(StoreContractTest, ReadsSeeObjectsReplacedByPutCopyAndDelete) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(Write(s, "obj", 0, "first").ok());
  EXPECT_EQ(ReadRange(s, "obj", 0, 5), "first");
  ASSERT_TRUE(s.Put("obj", "put").ok());
  EXPECT_EQ(ReadRange(s, "obj", 0, 5), std::string("put") + Zeros(2));
  ASSERT_TRUE(Write(s, "other", 0, "copied").ok());
  ASSERT_TRUE(s.CopyBlocking("other", "obj").ok());
  EXPECT_EQ(ReadRange(s, "obj", 0, 6), "copied");
  ASSERT_TRUE(Write(s, "obj", 0, "C").ok());
  EXPECT_EQ(ReadRange(s, "other", 0, 6), "copied");
  ASSERT_TRUE(s.Delete("obj").ok());
  std::string out(4, '\0');
  EXPECT_TRUE(s.ReadBlocking("obj", 0, std::span<char>(out.data(), out.size())).status().IsNotFound());
  ASSERT_TRUE(Write(s, "obj", 2, "new").ok());
  EXPECT_EQ(ReadRange(s, "obj", 0, 5), Zeros(2) + "new");
}

TEST_P(StoreContractTest, ConcurrentDataPathIoFromManyThreads) {
  ObjectStore& s = *store_;
  const std::string shared = Pattern(1 << 20, 9);
  ASSERT_TRUE(Write(s, "shared", 0, shared).ok());
  constexpr int kThreads = 6, kOps = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const std::string own = "own-" + std::to_string(t);
      std::string expect(64 * 4096, '\0');
      std::string buf(4096, '\0');
      for (int i = 0; i < kOps; i++) {
        uint64_t block = (i * 7 + t) % 64;
        std::string data = Pattern(4096, t * 1000 + i);
        if (!Write(s, own, block * 4096, data).ok()) failures++;
        expect.replace(block * 4096, 4096, data);
        uint64_t check = (i * 13) % 64;
        auto got = s.ReadBlocking(own, check * 4096, std::span<char>(buf.data(), buf.size()));
        if (!got.ok() || buf != std::string_view(expect).substr(check * 4096, 4096)) failures++;
        uint64_t soff = (i * 4096 + t * 512) % (shared.size() - 4096);
        got = s.ReadBlocking("shared", soff, std::span<char>(buf.data(), buf.size()));
        if (!got.ok() || buf != std::string_view(shared).substr(soff, 4096)) failures++;
        if (i % 50 == 0 && !s.SyncBlocking({own}).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// ---- control path ----

TEST_P(StoreContractTest, GetPutCreate) {
  ObjectStore& s = *store_;
  EXPECT_TRUE(s.Get("meta").status().IsNotFound());
  ASSERT_TRUE(s.Create("meta", "v1").ok());
  Status again = s.Create("meta", "v2");
  EXPECT_TRUE(again.IsAlreadyExists()) << again.ToString();
  EXPECT_EQ(*s.Get("meta"), "v1");
  ASSERT_TRUE(s.Put("meta", "a much longer second version").ok());
  ASSERT_TRUE(s.Put("meta", "v3").ok());  // shorter: the whole object is replaced
  EXPECT_EQ(*s.Get("meta"), "v3");
  ASSERT_TRUE(s.Put("new", "by put").ok());
  EXPECT_EQ(*s.Get("new"), "by put");
  ASSERT_TRUE(s.Put("empty", "").ok());
  EXPECT_EQ(*s.Get("empty"), "");
  ASSERT_TRUE(Write(s, "data", 0, "xy").ok());
  EXPECT_EQ(*s.Get("data"), "xy");  // data-path objects are readable whole
}

TEST_P(StoreContractTest, CompareAndSwap) {
  ObjectStore& s = *store_;
  EXPECT_TRUE(s.CompareAndSwap("cas", "", "x").IsNotFound());
  ASSERT_TRUE(s.Create("cas", "one").ok());
  Status st = s.CompareAndSwap("cas", "two", "three");
  EXPECT_TRUE(st.IsConflict()) << st.ToString();
  EXPECT_EQ(*s.Get("cas"), "one");
  ASSERT_TRUE(s.CompareAndSwap("cas", "one", "two").ok());
  EXPECT_EQ(*s.Get("cas"), "two");
  ASSERT_TRUE(s.CompareAndSwap("cas", "two", "").ok());
  EXPECT_EQ(*s.Get("cas"), "");
}

TEST_P(StoreContractTest, ConcurrentCompareAndSwapLosesNoUpdate) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(s.Create("counter", "0").ok());
  constexpr int kThreads = 8, kIncrements = 25;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; i++) {
        for (;;) {
          Result<std::string> cur = s.Get("counter");
          if (!cur.ok()) { errors++; break; }
          Status st = s.CompareAndSwap("counter", *cur, std::to_string(std::stoi(*cur) + 1));
          if (st.ok()) break;
          if (!st.IsConflict()) { errors++; break; }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(*s.Get("counter"), std::to_string(kThreads * kIncrements));
}

TEST_P(StoreContractTest, TruncateSetsTheSize) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(s.Truncate("t", 10000).ok());  // creates
  EXPECT_EQ(SizeOf(s, "t"), 10000u);
  EXPECT_EQ(ReadRange(s, "t", 0, 10000), Zeros(10000));
  ASSERT_TRUE(Write(s, "t", 0, "abcdef").ok());
  ASSERT_TRUE(s.Truncate("t", 3).ok());
  ASSERT_TRUE(s.Truncate("t", 6).ok());  // regrown bytes are zeros
  EXPECT_EQ(ReadRange(s, "t", 0, 6), std::string("abc") + Zeros(3));
}

TEST_P(StoreContractTest, StatReportsSizeOrNotFound) {
  ObjectStore& s = *store_;
  EXPECT_TRUE(s.Stat("x").status().IsNotFound());
  ASSERT_TRUE(s.Put("x", "12345").ok());
  EXPECT_EQ(SizeOf(s, "x"), 5u);
  ASSERT_TRUE(Write(s, "x", 99, "!").ok());
  EXPECT_EQ(SizeOf(s, "x"), 100u);
}

TEST_P(StoreContractTest, DeleteTwiceIsNotFound) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(s.Put("d", "x").ok());
  ASSERT_TRUE(s.Delete("d").ok());
  EXPECT_TRUE(s.Delete("d").IsNotFound());
  EXPECT_TRUE(s.Get("d").status().IsNotFound());
  EXPECT_TRUE(s.Create("d", "again").ok());
}

TEST_P(StoreContractTest, DeleteManyRemovesExactlyTheNamedObjects) {
  ObjectStore& s = *store_;
  std::vector<std::string> doomed;
  for (int i = 0; i < 150; i++) {  // more than one batch, spread over many shards
    std::string name = "dm.gone." + std::to_string(i);
    ASSERT_TRUE(Write(s, name, 0, "x").ok());
    doomed.push_back(name);
  }
  ASSERT_TRUE(s.Put("dm.kept", "k").ok());
  doomed.push_back("dm.never-existed");  // absent names are fine
  ASSERT_TRUE(s.DeleteMany(doomed).ok());
  ASSERT_TRUE(s.DeleteMany({}).ok());
  auto left = s.List("dm.");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, std::vector<std::string>{"dm.kept"});
  EXPECT_TRUE(s.ReadBlocking("dm.gone.7", 0, std::span<char>()).status().IsNotFound());
  EXPECT_EQ(s.DeleteMany({"dm.kept", "../bad"}).code(), Code::kInvalidArgument);
}

TEST_P(StoreContractTest, ListByPrefixIsSorted) {
  ObjectStore& s = *store_;
  for (const char* n : {"vol.b", "vol.a", "vol.c.0001", "volume", "other", "vol.", "Vol.x"}) {
    ASSERT_TRUE(s.Put(n, "x").ok());
  }
  ASSERT_TRUE(Write(s, "vol.d", 0, "data").ok());
  EXPECT_EQ(*s.List("vol."), (std::vector<std::string>{"vol.", "vol.a", "vol.b", "vol.c.0001", "vol.d"}));
  EXPECT_EQ(*s.List(""), (std::vector<std::string>{"Vol.x", "other", "vol.", "vol.a", "vol.b",
                                                   "vol.c.0001", "vol.d", "volume"}));
  EXPECT_TRUE(s.List("nothing")->empty());
  ASSERT_TRUE(s.Delete("vol.a").ok());
  EXPECT_EQ(*s.List("vol.a"), std::vector<std::string>{});
}

TEST_P(StoreContractTest, InvalidNamesAreRefused) {
  if (!GetParam().checks_names) GTEST_SKIP() << "this store trusts callers to validate names";
  ObjectStore& s = *store_;
  std::string buf(8, '\0');
  for (const std::string& bad : {std::string(""), std::string("../escape"), std::string("a/b"),
                                 std::string("."), std::string(".."), std::string(201, 'n'),
                                 std::string("sp ace"), std::string("nul\0x", 5)}) {
    SCOPED_TRACE("name '" + bad + "'");
    EXPECT_EQ(s.Put(bad, "x").code(), Code::kInvalidArgument);
    EXPECT_EQ(s.Create(bad, "x").code(), Code::kInvalidArgument);
    EXPECT_EQ(s.Get(bad).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(s.Delete(bad).code(), Code::kInvalidArgument);
    EXPECT_EQ(Write(s, bad, 0, "x").code(), Code::kInvalidArgument);
    EXPECT_EQ(s.ReadBlocking(bad, 0, std::span<char>(buf.data(), buf.size())).status().code(),
              Code::kInvalidArgument);
    EXPECT_EQ(s.CopyBlocking("ok", bad).code(), Code::kInvalidArgument);
  }
  EXPECT_TRUE(s.List("")->empty());
}

// ---- locks ----

TEST_P(StoreContractTest, LockIsExclusiveAndNamesItsHolder) {
  ObjectStore& s = *store_;
  EXPECT_TRUE(s.GetLock("lk").status().IsNotFound());
  ASSERT_TRUE(s.Lock("lk", "host-a:1", 60000).ok());
  Status busy = s.Lock("lk", "host-b:2", 60000);
  EXPECT_EQ(busy.code(), Code::kBusy);
  EXPECT_NE(busy.message().find("host-a:1"), std::string::npos) << busy.ToString();
  Result<LockInfo> info = s.GetLock("lk");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->owner, "host-a:1");
}

TEST_P(StoreContractTest, LockRenewalExtendsTheLease) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(s.Lock("lk", "a", 1000).ok());
  int64_t first = s.GetLock("lk")->expires_unix_ms;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(s.Lock("lk", "a", 60000).ok());
  EXPECT_GE(s.GetLock("lk")->expires_unix_ms, first + 50000);
  EXPECT_EQ(s.Lock("lk", "b", 1000).code(), Code::kBusy);
}

TEST_P(StoreContractTest, AnExpiredLeaseCanBeTakenOver) {
  ObjectStore& s = *store_;
  // Busy while the lease runs: a long lease, so a loaded machine cannot let it lapse
  // between the two calls. Then a renewal shortens it (renewal sets now + lease) and lets it lapse.
  ASSERT_TRUE(s.Lock("lk", "a", 60000).ok());
  EXPECT_EQ(s.Lock("lk", "b", 60000).code(), Code::kBusy);
  ASSERT_TRUE(s.Lock("lk", "a", 50).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_EQ(s.GetLock("lk")->owner, "a");  // an expired lease reads as its last holder
  ASSERT_TRUE(s.Lock("lk", "b", 60000).ok());
  EXPECT_EQ(s.GetLock("lk")->owner, "b");
  EXPECT_EQ(s.Lock("lk", "a", 60000).code(), Code::kBusy);
  EXPECT_EQ(s.Unlock("lk", "a").code(), Code::kBusy);
}

TEST_P(StoreContractTest, UnlockOnlyByTheOwner) {
  ObjectStore& s = *store_;
  EXPECT_TRUE(s.Unlock("lk", "a").IsNotFound());
  ASSERT_TRUE(s.Lock("lk", "a", 60000).ok());
  EXPECT_EQ(s.Unlock("lk", "b").code(), Code::kBusy);
  EXPECT_EQ(s.GetLock("lk")->owner, "a");
  ASSERT_TRUE(s.Unlock("lk", "a").ok());
  EXPECT_TRUE(s.GetLock("lk").status().IsNotFound());
  EXPECT_TRUE(s.Unlock("lk", "a").IsNotFound());
  ASSERT_TRUE(s.Lock("lk", "b", 60000).ok());  // free again
  EXPECT_EQ(s.GetLock("lk")->owner, "b");
}

TEST_P(StoreContractTest, BreakLockReleasesTheNamedOwnersLeaseAtOnce) {
  ObjectStore& s = *store_;
  // With fence too: a store that fences must not fence itself (here the holder is the
  // caller's own connection); one that cannot just breaks.
  for (bool fence : {false, true}) {
    SCOPED_TRACE(fence ? "fence" : "no fence");
    ASSERT_TRUE(s.Lock("lk", "dead-a", 60000).ok());
    ASSERT_TRUE(s.BreakLock("lk", "dead-a", fence).ok());
    EXPECT_TRUE(s.GetLock("lk").status().IsNotFound());
    ASSERT_TRUE(s.Lock("lk", "b", 60000).ok());  // now, not when dead-a's lease would end
    EXPECT_EQ(s.GetLock("lk")->owner, "b");
    ASSERT_TRUE(s.Unlock("lk", "b").ok());
  }
}

TEST_P(StoreContractTest, BreakLockOfAnotherOwnersLockIsBusy) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(s.Lock("lk", "a", 60000).ok());
  for (bool fence : {false, true}) {
    Status busy = s.BreakLock("lk", "b", fence);
    EXPECT_EQ(busy.code(), Code::kBusy) << busy.ToString();
    EXPECT_NE(busy.message().find("'a'"), std::string::npos) << busy.ToString();
  }
  EXPECT_EQ(s.GetLock("lk")->owner, "a");
  EXPECT_TRUE(s.Lock("lk", "a", 60000).ok());  // still a's, renewable
}

TEST_P(StoreContractTest, BreakLockOfAFreeLockIsNotFound) {
  ObjectStore& s = *store_;
  EXPECT_TRUE(s.BreakLock("lk", "a", false).IsNotFound());  // never locked
  EXPECT_TRUE(s.BreakLock("lk", "a", true).IsNotFound());
  ASSERT_TRUE(s.Lock("lk", "a", 60000).ok());
  ASSERT_TRUE(s.Unlock("lk", "a").ok());
  EXPECT_TRUE(s.BreakLock("lk", "a", false).IsNotFound());  // released
  EXPECT_TRUE(s.BreakLock("lk", "a", true).IsNotFound());
}

TEST_P(StoreContractTest, BreakLockClearsAnExpiredLeaseOfItsOwner) {
  ObjectStore& s = *store_;
  ASSERT_TRUE(s.Lock("lk", "a", 50).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  // A lapsed lease is still its owner's (GetLock names it) and nobody else's.
  EXPECT_TRUE(s.BreakLock("lk", "b", true).IsNotFound());
  ASSERT_TRUE(s.BreakLock("lk", "a", true).ok());
  EXPECT_TRUE(s.GetLock("lk").status().IsNotFound());
  EXPECT_TRUE(s.BreakLock("lk", "a", true).IsNotFound());
}

TEST_P(StoreContractTest, LockRefusesBadOwnersAndLeases) {
  EXPECT_EQ(store_->Lock("lk", "", 1000).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->Lock("lk", "two\nlines", 1000).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->Lock("lk", "a", 0).code(), Code::kInvalidArgument);
}

TEST_P(StoreContractTest, ConcurrentLockersGetExactlyOneWinner) {
  ObjectStore& s = *store_;
  constexpr int kThreads = 8;
  std::atomic<int> winners{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      Status st = s.Lock("race", "owner-" + std::to_string(t), 60000);
      if (st.ok()) winners++;
      else if (st.code() != Code::kBusy) errors++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(errors.load(), 0);
}

}  // namespace skerry
