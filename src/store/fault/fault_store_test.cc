// Tests of the store decorators: the store contract through each of them, the fault
// rules (by operation, rate, trigger file), delays, URI parsing, and the non-durable
// store's drop and tear semantics.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>

#include "skerry/object_store.h"
#include "store/dir/dir_store.h"
#include "store/fault/decorator_uri.h"
#include "store/fault/delay_store.h"
#include "store/fault/fault_store.h"
#include "store/fault/nondurable_store.h"
#include "store/mem/mem_store.h"
#include "store/store_contract.h"
#include "store/test_temp_dir.h"

namespace skerry {
namespace {

// ---------------------------------------------------------------- the contract

std::shared_ptr<ObjectStore> Opened(const std::string& uri) {
  auto s = OpenStore(uri);
  if (!s.ok()) ADD_FAILURE() << uri << ": " << s.status().ToString();
  return s.ok() ? *s : nullptr;
}

// A NonDurableStore over a DirStore in a new temporary directory.
std::shared_ptr<ObjectStore> MakeNonDurableDir() {
  auto dir = std::make_shared<TestTempDir>();
  auto inner = DirStore::Open(dir->path() + "/store");
  if (!inner.ok()) {
    ADD_FAILURE() << inner.status().ToString();
    return nullptr;
  }
  auto s = std::make_shared<NonDurableStore>(*inner);
  return std::shared_ptr<ObjectStore>(s.get(), [s, dir](ObjectStore*) mutable {
    s.reset();
    dir.reset();
  });
}

INSTANTIATE_TEST_SUITE_P(
    Decorators, StoreContractTest,
    ::testing::Values(
        // Rules that never fire: the decorator must be invisible.
        StoreContractParam{"fault_idle",
                           [] { return Opened("fault:error=eio&trigger=/nonexistent/skerry-trigger,"
                                              "error=enospc&rate=0+mem:"); }},
        StoreContractParam{"delay", [] { return Opened("delay:ms=0&jitter=1&ops=write|sync+mem:"); }},
        // Completions on the store's own threads, as with RADOS.
        StoreContractParam{"delay_async", [] { return Opened("delay:ms=0&jitter=1&async=3+mem:"); }},
        StoreContractParam{"nondurable_mem", [] { return Opened("nondurable:+mem:"); }},
        StoreContractParam{"nondurable_dir", MakeNonDurableDir},
        StoreContractParam{"stacked", [] { return Opened("fault:error=eio&rate=0+delay:ms=0+nondurable:+mem:"); }}),
    StoreContractName);

// ---------------------------------------------------------------- helpers

Status Write(ObjectStore& s, const std::string& name, uint64_t off, std::string_view data, bool fresh = false) {
  return s.WriteBlocking(name, off, std::span<const char>(data.data(), data.size()), fresh);
}

Result<std::string> ReadAll(ObjectStore& s, const std::string& name, size_t n) {
  std::string out(n, '\0');
  auto got = s.ReadBlocking(name, 0, std::span<char>(out.data(), out.size()));
  if (!got.ok()) return got.status();
  return out;
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>((x >> 24) | 1);  // never zero: zeros mean "not written"
  }
  return s;
}

std::shared_ptr<FaultStore> Fault(std::shared_ptr<ObjectStore> inner, std::string_view spec) {
  auto rules = ParseFaultRules(spec);
  EXPECT_TRUE(rules.ok()) << rules.status().ToString();
  return std::make_shared<FaultStore>(std::move(inner), std::move(*rules), std::string(spec));
}

void Touch(const std::string& path) { std::ofstream(path) << "x"; }

// ---------------------------------------------------------------- fault rules

TEST(FaultStoreTest, FailsOnlyTheNamedOperationsWithTheNamedError) {
  auto mem = std::make_shared<MemStore>();
  auto s = Fault(mem, "error=enospc&ops=write|copy&rate=1");
  ASSERT_TRUE(mem->Put("a", "data").ok());
  Status w = Write(*s, "a", 0, "new");
  EXPECT_EQ(w.code(), Code::kNoSpace) << w.ToString();
  EXPECT_EQ(w.sys_errno(), ENOSPC);
  EXPECT_NE(w.message().find("write 'a'"), std::string::npos) << w.message();
  EXPECT_EQ(s->CopyBlocking("a", "b").code(), Code::kNoSpace);
  // Nothing of a failed call reaches the inner store.
  EXPECT_EQ(*mem->Get("a"), "data");
  EXPECT_TRUE(mem->Stat("b").status().IsNotFound());
  // Other classes pass.
  EXPECT_EQ(*ReadAll(*s, "a", 4), "data");
  EXPECT_TRUE(s->ZeroBlocking("a", 0, 1).ok());
  EXPECT_TRUE(s->Put("c", "x").ok());
  EXPECT_TRUE(s->SyncBlocking({"a"}).ok());
  EXPECT_EQ(s->injected(), 2u);
}

TEST(FaultStoreTest, EachErrorMapsToItsStatus) {
  auto mem = std::make_shared<MemStore>();
  auto eio = Fault(mem, "error=eio&ops=read&rate=1");
  ASSERT_TRUE(mem->Put("a", "x").ok());
  std::string buf(1, '\0');
  auto r = eio->ReadBlocking("a", 0, std::span<char>(buf.data(), 1));
  EXPECT_EQ(r.status().code(), Code::kIOError);
  EXPECT_EQ(r.status().sys_errno(), EIO);

  auto timeout = Fault(mem, "error=etimedout&ops=get&ms=30&rate=1");
  auto start = std::chrono::steady_clock::now();
  auto g = timeout->Get("a");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(g.status().code(), Code::kTimedOut);
  EXPECT_EQ(g.status().sys_errno(), ETIMEDOUT);
  EXPECT_GE(took, std::chrono::milliseconds(30));
  EXPECT_FALSE(timeout->capabilities().native_async);
}

TEST(FaultStoreTest, EveryOperationClassCanFail) {
  auto mem = std::make_shared<MemStore>();
  ASSERT_TRUE(mem->Put("a", "x").ok());
  auto s = Fault(mem, "error=eio&ops=all&rate=1");
  std::string buf(1, '\0');
  EXPECT_EQ(s->ReadBlocking("a", 0, std::span<char>(buf.data(), 1)).status().code(), Code::kIOError);
  EXPECT_EQ(Write(*s, "a", 0, "y").code(), Code::kIOError);
  EXPECT_EQ(s->ZeroBlocking("a", 0, 1).code(), Code::kIOError);
  EXPECT_EQ(s->CopyBlocking("a", "b").code(), Code::kIOError);
  EXPECT_EQ(s->SyncBlocking({"a"}).code(), Code::kIOError);
  EXPECT_EQ(s->Get("a").status().code(), Code::kIOError);
  EXPECT_EQ(s->Put("a", "z").code(), Code::kIOError);
  EXPECT_EQ(s->Create("n", "z").code(), Code::kIOError);
  EXPECT_EQ(s->CompareAndSwap("a", "x", "z").code(), Code::kIOError);
  EXPECT_EQ(s->Truncate("a", 0).code(), Code::kIOError);
  EXPECT_EQ(s->Stat("a").status().code(), Code::kIOError);
  EXPECT_EQ(s->Delete("a").code(), Code::kIOError);
  EXPECT_EQ(s->List("").status().code(), Code::kIOError);
  EXPECT_EQ(s->Lock("lk", "me", 1000).code(), Code::kIOError);
  EXPECT_EQ(s->Unlock("lk", "me").code(), Code::kIOError);
  EXPECT_EQ(s->GetLock("lk").status().code(), Code::kIOError);
  EXPECT_EQ(s->injected(), 16u);
  EXPECT_EQ(*mem->Get("a"), "x");
  EXPECT_EQ(mem->List("")->size(), 1u);
  s->set_enabled(false);
  EXPECT_TRUE(s->Put("a", "z").ok());
  EXPECT_TRUE(s->Lock("lk", "me", 1000).ok());
}

TEST(FaultStoreTest, TheFirstRuleThatFiresDecides) {
  auto mem = std::make_shared<MemStore>();
  ASSERT_TRUE(mem->Put("a", "x").ok());
  auto s = Fault(mem, "error=enospc&ops=write&rate=1,error=eio&ops=write|read&rate=1");
  EXPECT_EQ(Write(*s, "a", 0, "y").code(), Code::kNoSpace);
  std::string buf(1, '\0');
  EXPECT_EQ(s->ReadBlocking("a", 0, std::span<char>(buf.data(), 1)).status().code(), Code::kIOError);
  EXPECT_TRUE(s->Get("a").ok());
}

TEST(FaultStoreTest, PrefixLimitsARuleToSomeObjects) {
  auto mem = std::make_shared<MemStore>();
  auto s = Fault(mem, "error=eio&ops=write|copy|sync|list&rate=1&prefix=v.a.");
  EXPECT_EQ(Write(*s, "v.a.1", 0, "x").code(), Code::kIOError);
  ASSERT_TRUE(Write(*s, "v.b.1", 0, "x").ok());
  ASSERT_TRUE(Write(*s, "v.ab", 0, "x").ok());
  EXPECT_EQ(s->CopyBlocking("v.b.1", "v.a.2").code(), Code::kIOError);  // either end matches
  EXPECT_TRUE(s->CopyBlocking("v.b.1", "v.b.2").ok());
  Status sync = s->SyncBlocking({"v.b.1", "v.a.1", "v.a.3"});
  EXPECT_EQ(sync.code(), Code::kIOError);
  EXPECT_NE(sync.message().find("sync 'v.b.1', 'v.a.1' and 1 more"), std::string::npos) << sync.message();
  EXPECT_TRUE(s->SyncBlocking({"v.b.1"}).ok());
  EXPECT_EQ(s->List("v.a.").status().code(), Code::kIOError);
  EXPECT_TRUE(s->List("v.b.").ok());
}

// How many of `n` writes fail under `spec`, and which.
std::vector<bool> Failures(std::string_view spec, int n) {
  auto s = Fault(std::make_shared<MemStore>(), spec);
  std::vector<bool> out;
  for (int i = 0; i < n; i++) out.push_back(!Write(*s, "a", 0, "x").ok());
  return out;
}

TEST(FaultStoreTest, RateIsSeededAndRoughlyRight) {
  auto a = Failures("error=eio&ops=write&rate=0.25&seed=7", 4000);
  auto b = Failures("error=eio&ops=write&rate=0.25&seed=7", 4000);
  auto c = Failures("error=eio&ops=write&rate=0.25&seed=8", 4000);
  EXPECT_EQ(a, b);  // the same seed fails the same calls
  EXPECT_NE(a, c);
  long failed = std::count(a.begin(), a.end(), true);
  EXPECT_GT(failed, 850);
  EXPECT_LT(failed, 1150);
  auto never = Failures("error=eio&ops=write&rate=0", 500);
  EXPECT_EQ(std::count(never.begin(), never.end(), true), 0);
  auto always = Failures("error=eio&ops=write&rate=1", 500);
  EXPECT_EQ(std::count(always.begin(), always.end(), true), 500);
}

TEST(FaultStoreTest, TriggerFileTurnsTheRuleOnAndOff) {
  TestTempDir tmp;
  std::string trigger = tmp.path() + "/full";
  auto mem = std::make_shared<MemStore>();
  auto s = Fault(mem, "error=enospc&ops=write&trigger=" + trigger);
  EXPECT_TRUE(Write(*s, "a", 0, "1").ok());
  Touch(trigger);
  EXPECT_EQ(Write(*s, "a", 0, "2").code(), Code::kNoSpace);
  EXPECT_EQ(Write(*s, "a", 0, "3").code(), Code::kNoSpace);
  EXPECT_EQ(*mem->Get("a"), "1");
  std::remove(trigger.c_str());
  EXPECT_TRUE(Write(*s, "a", 0, "4").ok());
  EXPECT_EQ(*mem->Get("a"), "4");
}

TEST(FaultStoreTest, TriggerAndRateTogether) {
  TestTempDir tmp;
  std::string trigger = tmp.path() + "/flaky";
  auto s = Fault(std::make_shared<MemStore>(), "error=eio&ops=write&rate=0.5&seed=3&trigger=" + trigger);
  for (int i = 0; i < 100; i++) ASSERT_TRUE(Write(*s, "a", 0, "x").ok());
  Touch(trigger);
  int failed = 0;
  for (int i = 0; i < 400; i++) failed += !Write(*s, "a", 0, "x").ok();
  EXPECT_GT(failed, 140);
  EXPECT_LT(failed, 260);
}

// ---------------------------------------------------------------- delay

TEST(DelayStoreTest, DelaysOnlyTheNamedOperations) {
  auto s = Opened("delay:ms=40&ops=read+mem:");
  ASSERT_TRUE(s);
  ASSERT_TRUE(Write(*s, "a", 0, "x").ok());
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(ReadAll(*s, "a", 1).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(40));
  EXPECT_FALSE(s->capabilities().native_async);
}

TEST(DelayStoreTest, JitterAddsUpToItsBound) {
  auto s = Opened("delay:ms=5&jitter=20&seed=2+mem:");
  ASSERT_TRUE(s);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; i++) ASSERT_TRUE(s->Put("a", "x").ok());
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(50));
  EXPECT_LT(took, std::chrono::milliseconds(10 * 25 + 2000));  // generous: shared machines
}

TEST(DelayStoreTest, AsyncReturnsAtOnceAndCompletesOnItsOwnThread) {
  auto s = Opened("delay:ms=300&ops=read&async=1+mem:");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->capabilities().native_async);
  ASSERT_TRUE(Write(*s, "a", 0, "xyz").ok());
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::thread::id completed_on;
  char buf[3];
  auto start = std::chrono::steady_clock::now();
  s->Read("a", 0, std::span<char>(buf, 3), [&](Result<size_t> n) {
    EXPECT_TRUE(n.ok());
    std::lock_guard lock(mu);
    completed_on = std::this_thread::get_id();
    finished = true;
    cv.notify_one();
  });
  std::unique_lock lock(mu);
  EXPECT_FALSE(finished);  // the 300 ms sleep is not on this thread
  cv.wait(lock, [&] { return finished; });
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  EXPECT_NE(completed_on, std::this_thread::get_id());
  EXPECT_EQ(std::string(buf, 3), "xyz");
}

// ---------------------------------------------------------------- URIs

TEST(DecoratorUriTest, OpensStacksAndReportsItsUri) {
  TestTempDir tmp;
  std::string uri = "fault:error=eio&ops=sync&rate=0,error=enospc&ops=write&trigger=" + tmp.path() +
                    "/t+delay:ms=0&ops=read+nondurable:+dir:" + tmp.path() + "/store";
  auto s = OpenStore(uri);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->uri(), uri);
  EXPECT_FALSE((*s)->capabilities().durable_writes);
  EXPECT_TRUE((*s)->capabilities().persistent);
  auto again = OpenStore((*s)->uri());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->uri(), uri);
  // Through the whole stack: held until synced, then in the directory store.
  ASSERT_TRUE(Write(**s, "obj", 0, "abc").ok());
  auto dir = OpenStore("dir:" + tmp.path() + "/store");
  ASSERT_TRUE(dir.ok());
  EXPECT_TRUE((*dir)->Stat("obj").status().IsNotFound());
  ASSERT_TRUE((*s)->SyncBlocking({"obj"}).ok());
  EXPECT_EQ(*(*dir)->Get("obj"), "abc");
}

TEST(DecoratorUriTest, BadUrisNameTheBadPart) {
  struct Case {
    const char* uri;
    const char* says;
  } cases[] = {
      {"fault:error=eio&ops=write&rate=0.1", "needs an inner store after '+'"},
      {"fault:error=eio&rate=1+", "needs an inner store after '+'"},
      {"fault:+mem:", "needs at least one rule"},
      {"fault:error=eoi&rate=1+mem:", "unknown error 'eoi'"},
      {"fault:error=eio&ops=wirte&rate=1+mem:", "unknown operation 'wirte'"},
      {"fault:error=eio&ops=read|&rate=1+mem:", "unknown operation ''"},
      {"fault:error=eio&rate=2+mem:", "rate=2 is not a probability"},
      {"fault:error=eio&rate=abc+mem:", "rate=abc is not a probability"},
      {"fault:error=eio&ops=write+mem:", "needs rate=P or trigger=PATH"},
      {"fault:ops=write&rate=1+mem:", "needs error=eio|enospc|etimedout"},
      {"fault:error=eio&rate=1&colour=red+mem:", "unknown key 'colour'"},
      {"fault:error=eio&rate=1&rate=0+mem:", "option 'rate' given twice"},
      {"fault:error=eio&rate=1,,error=eio&rate=1+mem:", "empty fault rule"},
      {"fault:error=eio&&rate=1+mem:", "bad option ''"},
      {"fault:error=eio&rate+mem:", "bad option 'rate'"},
      {"fault:error=eio&seed=x&rate=1+mem:", "seed=x is not a whole number"},
      {"fault:error=eio&trigger=+mem:", "trigger= needs a file path"},
      {"fault:error=eio&rate=1&prefix=+mem:", "prefix= needs an object name prefix"},
      {"delay:+mem:", "needs ms=N"},
      {"delay:ms=-1+mem:", "ms=-1 is not a whole number"},
      {"delay:ms=1&ops=reed+mem:", "unknown operation 'reed'"},
      {"delay:ms=1&speed=2+mem:", "unknown key 'speed'"},
      {"delay:ms=1&async=65+mem:", "at most 64 threads"},
      {"nondurable:mode=melt+mem:", "unknown mode 'melt'"},
      {"nondurable:foo=1+mem:", "unknown key 'foo'"},
      {"nondurable:", "needs an inner store after '+'"},
      {"fault:error=eio&rate=1+nfs:/x", "unknown store URI 'nfs:/x'"},
  };
  for (const Case& c : cases) {
    auto s = OpenStore(c.uri);
    ASSERT_FALSE(s.ok()) << c.uri;
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << c.uri;
    EXPECT_NE(s.status().message().find(c.says), std::string::npos) << c.uri << " -> " << s.status().message();
    EXPECT_EQ(s.status().message().find('\n'), std::string::npos) << c.uri;
  }
  // The message names the whole URI too.
  EXPECT_EQ(OpenStore("fault:error=eoi&rate=1+mem:").status().message(),
            "store URI 'fault:error=eoi&rate=1+mem:': fault rule 'error=eoi&rate=1': unknown error 'eoi' "
            "(use eio, enospc or etimedout)");
  EXPECT_TRUE(IsDecoratorUri("nondurable:+mem:"));
  EXPECT_FALSE(IsDecoratorUri("dir:/fault:x+y"));
}

// ---------------------------------------------------------------- non-durable

TEST(NonDurableStoreTest, HoldsWritesUntilSyncAndDropsThemOnCrash) {
  auto mem = std::make_shared<MemStore>();
  NonDurableStore s(mem);
  EXPECT_FALSE(s.capabilities().durable_writes);  // so the volume layer syncs
  ASSERT_TRUE(Write(s, "synced", 0, "durable").ok());
  ASSERT_TRUE(s.SyncBlocking({"synced"}).ok());
  EXPECT_EQ(*mem->Get("synced"), "durable");
  ASSERT_TRUE(Write(s, "synced", 0, "DUR").ok());
  ASSERT_TRUE(Write(s, "fresh", 0, "never synced").ok());
  ASSERT_TRUE(s.Truncate("t", 10).ok());
  EXPECT_EQ(*ReadAll(s, "synced", 7), "DURable");  // reads see the held writes
  EXPECT_EQ(*s.List(""), (std::vector<std::string>{"fresh", "synced", "t"}));
  EXPECT_EQ(s.unsynced_objects(), 3u);
  EXPECT_EQ(*mem->Get("synced"), "durable");  // INNER does not, yet
  EXPECT_TRUE(mem->Stat("fresh").status().IsNotFound());

  s.Crash(CrashMode::kDrop, 1);
  EXPECT_TRUE(s.crashed());
  EXPECT_EQ(*mem->Get("synced"), "durable");
  EXPECT_TRUE(mem->Stat("fresh").status().IsNotFound());
  EXPECT_TRUE(mem->Stat("t").status().IsNotFound());
  // A crashed store answers nothing, so a destructor's flush reaches nothing.
  EXPECT_EQ(Write(s, "x", 0, "y").code(), Code::kIOError);
  EXPECT_EQ(s.SyncBlocking({"synced"}).code(), Code::kIOError);
  EXPECT_EQ(s.Get("synced").status().code(), Code::kIOError);
  EXPECT_EQ(ReadAll(s, "synced", 1).status().code(), Code::kIOError);
  EXPECT_EQ(s.Put("p", "q").code(), Code::kIOError);
  EXPECT_EQ(s.Lock("lk", "me", 1000).code(), Code::kIOError);
  EXPECT_EQ(s.List("").status().code(), Code::kIOError);
  EXPECT_TRUE(mem->Stat("p").status().IsNotFound());
  // The rebooted store is INNER, or a new NonDurableStore over it.
  NonDurableStore rebooted(mem);
  EXPECT_EQ(*rebooted.Get("synced"), "durable");
}

TEST(NonDurableStoreTest, SyncReplaysZeroCopyAndTruncate) {
  auto mem = std::make_shared<MemStore>();
  NonDurableStore s(mem);
  ASSERT_TRUE(Write(s, "a", 0, "0123456789").ok());
  ASSERT_TRUE(s.ZeroBlocking("a", 2, 3).ok());
  ASSERT_TRUE(s.Truncate("a", 8).ok());
  ASSERT_TRUE(s.CopyBlocking("a", "b").ok());  // copies the held content, not INNER's
  ASSERT_TRUE(Write(s, "a", 0, "X").ok());
  ASSERT_TRUE(s.SyncBlocking({"b"}).ok());
  const std::string zeros(3, '\0');
  EXPECT_EQ(*mem->Get("b"), "01" + zeros + "567");
  EXPECT_TRUE(mem->Stat("a").status().IsNotFound());  // not synced
  EXPECT_EQ(s.unsynced_objects(), 1u);
  ASSERT_TRUE(s.SyncBlocking({"a", "a", "missing"}).ok());
  EXPECT_EQ(*mem->Get("a"), "X1" + zeros + "567");
  EXPECT_EQ(s.unsynced_objects(), 0u);
}

TEST(NonDurableStoreTest, PutCasAndDeleteDiscardHeldWrites) {
  auto mem = std::make_shared<MemStore>();
  for (uint64_t seed = 0; seed < 20; seed++) {
    ASSERT_TRUE(mem->Put("p", "old").ok());
    ASSERT_TRUE(mem->Put("c", "old").ok());
    mem->Delete("d");
    NonDurableStore s(mem);
    ASSERT_TRUE(Write(s, "p", 0, "held").ok());
    ASSERT_TRUE(s.Put("p", "put").ok());
    EXPECT_EQ(*s.Get("p"), "put");
    ASSERT_TRUE(Write(s, "c", 0, "HELD").ok());
    EXPECT_TRUE(s.CompareAndSwap("c", "old", "x").IsConflict());  // compares what readers see
    ASSERT_TRUE(s.CompareAndSwap("c", "HELD", "cas").ok());
    ASSERT_TRUE(Write(s, "d", 0, "only held").ok());
    EXPECT_TRUE(s.Create("d", "x").IsAlreadyExists());
    ASSERT_TRUE(s.Delete("d").ok());  // it existed, for this instance
    EXPECT_TRUE(s.Delete("d").IsNotFound());
    EXPECT_TRUE(s.Get("d").status().IsNotFound());
    EXPECT_EQ(s.unsynced_objects(), 0u);
    // However the crash tears, the discarded writes never come back.
    s.Crash(CrashMode::kTear, seed);
    EXPECT_EQ(*mem->Get("p"), "put");
    EXPECT_EQ(*mem->Get("c"), "cas");
    EXPECT_TRUE(mem->Stat("d").status().IsNotFound());
  }
}

// The bytes of INNER after a tear are, for each held write, a prefix of it cut at a
// 512-byte boundary (of the object) over what was there before.
TEST(NonDurableStoreTest, TearAppliesASubsetOfWritesEachUpToASectorBoundary) {
  const std::string base(64 * 1024, '\0');  // Pattern() never writes a zero byte
  struct W {
    uint64_t off;
    std::string data;
  };
  int none = 0, whole = 0, partial = 0;
  for (uint64_t seed = 0; seed < 200; seed++) {
    auto mem = std::make_shared<MemStore>();
    ASSERT_TRUE(mem->Put("obj", base).ok());
    NonDurableStore s(mem);
    std::vector<W> writes;
    for (int i = 0; i < 6; i++) {  // disjoint, unaligned ranges
      W w{static_cast<uint64_t>(i) * 10000 + 100 + 37 * i, Pattern(3000 + 500 * i, seed * 10 + i)};
      ASSERT_TRUE(Write(s, "obj", w.off, w.data).ok());
      writes.push_back(w);
    }
    s.Crash(CrashMode::kTear, seed);
    std::string got = *mem->Get("obj");
    ASSERT_EQ(got.size(), base.size());
    for (const W& w : writes) {
      size_t n = 0;
      while (n < w.data.size() && got[w.off + n] == w.data[n]) n++;
      ASSERT_TRUE(n == w.data.size() || (w.off + n) % 512 == 0 || n == 0) << "seed " << seed << " cut at " << w.off + n;
      for (size_t i = n; i < w.data.size(); i++) ASSERT_EQ(got[w.off + i], '\0') << "seed " << seed;
      (n == 0 ? none : n == w.data.size() ? whole : partial)++;
    }
    // Bytes no write touched are untouched.
    for (size_t i = 0; i < 100; i++) ASSERT_EQ(got[i], '\0');
  }
  EXPECT_GT(none, 100);
  EXPECT_GT(whole, 100);
  EXPECT_GT(partial, 100);
}

TEST(NonDurableStoreTest, TearIsReproducibleFromItsSeed) {
  auto run = [](uint64_t seed) {
    auto mem = std::make_shared<MemStore>();
    NonDurableStore s(mem);
    for (int i = 0; i < 20; i++) {
      std::string name = "o" + std::to_string(i % 5);
      EXPECT_TRUE(Write(s, name, i * 700, Pattern(2000, i), i % 7 == 0).ok());
      if (i % 6 == 0) {
        EXPECT_TRUE(s.ZeroBlocking(name, 100, 1500).ok());
      }
      if (i % 9 == 0) {
        EXPECT_TRUE(s.CopyBlocking(name, "copy" + std::to_string(i)).ok());
      }
    }
    s.Crash(CrashMode::kTear, seed);
    std::string all;
    std::vector<std::string> names = *mem->List("");
    for (const std::string& n : names) all += n + "=" + *mem->Get(n) + ";";
    return all;
  };
  EXPECT_EQ(run(42), run(42));
  std::set<std::string> outcomes;
  for (uint64_t seed = 0; seed < 10; seed++) outcomes.insert(run(seed));
  EXPECT_GT(outcomes.size(), 5u);
}

TEST(NonDurableStoreTest, CopyAndTruncateTearAllOrNothing) {
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 60; seed++) {
    auto mem = std::make_shared<MemStore>();
    ASSERT_TRUE(mem->Put("dst", std::string(4096, 'd')).ok());
    ASSERT_TRUE(mem->Put("src", std::string(8192, 's')).ok());
    NonDurableStore s(mem);
    ASSERT_TRUE(s.CopyBlocking("src", "dst").ok());
    ASSERT_TRUE(s.Truncate("src", 100).ok());
    s.Crash(CrashMode::kTear, seed);
    std::string dst = *mem->Get("dst"), src = *mem->Get("src");
    ASSERT_TRUE(dst == std::string(4096, 'd') || dst == std::string(8192, 's')) << seed;
    ASSERT_TRUE(src == std::string(8192, 's') || src == std::string(100, 's')) << seed;
    seen.insert(dst.substr(0, 1) + src.substr(src.size() - 1) + std::to_string(src.size()));
  }
  EXPECT_EQ(seen.size(), 4u);
}

TEST(NonDurableStoreTest, TornFreshWriteMayLeaveOnlyItsTruncation) {
  bool saw_empty_prefix = false, saw_old = false, saw_new = false;
  for (uint64_t seed = 0; seed < 100; seed++) {
    auto mem = std::make_shared<MemStore>();
    ASSERT_TRUE(mem->Put("b", std::string(4096, 'o')).ok());
    NonDurableStore s(mem);
    std::string data = Pattern(2048, 1);
    ASSERT_TRUE(Write(s, "b", 1024, data, /*fresh=*/true).ok());
    s.Crash(CrashMode::kTear, seed);
    std::string got = *mem->Get("b");
    if (got == std::string(4096, 'o')) {
      saw_old = true;
    } else {
      ASSERT_LE(got.size(), 3072u);
      ASSERT_TRUE(got.size() == 0 || got.size() % 512 == 0) << got.size();
      ASSERT_EQ(got.substr(0, std::min<size_t>(got.size(), 1024)), std::string(std::min<size_t>(got.size(), 1024), '\0'));
      if (got.size() > 1024) {
        ASSERT_EQ(got.substr(1024), data.substr(0, got.size() - 1024));
      }
      saw_empty_prefix |= got.size() <= 1024;
      saw_new |= got.size() == 3072;
    }
  }
  EXPECT_TRUE(saw_old && saw_new && saw_empty_prefix);
}

TEST(NonDurableStoreTest, CrashTriggerFilePullsThePower) {
  TestTempDir tmp;
  std::string trigger = tmp.path() + "/power";
  auto mem = std::make_shared<MemStore>();
  auto s = OpenStore("nondurable:crash=" + trigger + "&mode=drop+mem:");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(Write(**s, "a", 0, "x").ok());
  Touch(trigger);
  EXPECT_EQ(Write(**s, "a", 0, "y").code(), Code::kIOError);
  std::remove(trigger.c_str());
  EXPECT_EQ((*s)->Get("a").status().code(), Code::kIOError);  // stays down
  EXPECT_TRUE(dynamic_cast<NonDurableStore&>(**s).crashed());
}

TEST(NonDurableStoreTest, FaultsAboveANonDurableStoreKeepWritesHeld) {
  TestTempDir tmp;
  std::string trigger = tmp.path() + "/syncfail";
  auto s = OpenStore("fault:error=eio&ops=sync&trigger=" + trigger + "+nondurable:+mem:");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(Write(**s, "a", 0, "x").ok());
  Touch(trigger);
  EXPECT_EQ((*s)->SyncBlocking({"a"}).code(), Code::kIOError);
  std::remove(trigger.c_str());
  EXPECT_EQ(*ReadAll(**s, "a", 1), "x");
  EXPECT_TRUE((*s)->SyncBlocking({"a"}).ok());
}

}  // namespace
}  // namespace skerry
