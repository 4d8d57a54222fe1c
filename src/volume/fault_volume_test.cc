// Volume I/O through injected store faults (fault: URIs, src/store/fault/): the error
// reaches the caller with its code unchanged (so the NBD layer can answer ENOSPC, EIO,
// ETIMEDOUT), only the failed request fails, and the volume works again once the fault
// goes away, with nothing acknowledged lost.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "store/fault/fault_store.h"
#include "store/fault/forwarding_store.h"
#include "store/fault/nondurable_store.h"
#include "store/mem/mem_store.h"
#include "volume/format.h"
#include "volume/open_volume.h"
#include "util/sim_clock.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

using testing::Pattern;
using testing::TempDir;

constexpr uint32_t kBlock = 64 * 1024;

struct Faulty {
  TempDir tmp;
  std::string trigger = tmp.path() + "/trigger";
  std::shared_ptr<ObjectStore> store;
  std::unique_ptr<Catalog> cat;

  // Over a directory store by default, as in production; `inner` "mem:" is faster.
  explicit Faulty(const std::string& rule, const std::string& inner = "", const VolumeOptions& options = {}) {
    auto s = OpenStore("fault:" + rule + "&trigger=" + trigger + "+" + (inner.empty() ? "dir:" + tmp.path() + "/store" : inner));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    store = *s;
    cat = std::move(*Catalog::Open(store, options));
  }
  void On() { std::ofstream(trigger) << "on"; }
  void Off() { std::remove(trigger.c_str()); }
};

Status WriteAt(Volume& v, uint64_t off, const std::string& data, bool fua = false) {
  return v.Write(off, std::span<const char>(data.data(), data.size()), fua);
}

std::string ReadAt(Volume& v, uint64_t off, size_t n) {
  std::string out(n, '\0');
  EXPECT_TRUE(v.Read(off, std::span<char>(out.data(), n)).ok());
  return out;
}

TEST(FaultVolumeTest, WriteGetsNoSpaceAndTheVolumeWorksAgainAfterwards) {
  Faulty f("error=enospc&ops=write|copy|zero|truncate");
  ASSERT_TRUE(f.cat->Create("vm", 8 * kBlock, kBlock).ok());
  auto v = f.cat->Open("vm");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const std::string before = Pattern(3 * kBlock, 1);
  ASSERT_TRUE(WriteAt(**v, 0, before).ok());
  ASSERT_TRUE((*v)->Flush().ok());

  f.On();
  // A hole (fresh object), an in-place write and a partial write to a shared block all fail alike.
  for (uint64_t off : {uint64_t{5 * kBlock + 100}, uint64_t{10}, uint64_t{kBlock + 7}}) {
    Status st = WriteAt(**v, off, Pattern(4096, 2));
    EXPECT_EQ(st.code(), Code::kNoSpace) << off << ": " << st.ToString();
    EXPECT_EQ(st.sys_errno(), ENOSPC);
  }
  EXPECT_EQ((*v)->WriteZeroes(2 * kBlock + 1, 10, false).code(), Code::kNoSpace);
  // Reads, flushes and metadata still work meanwhile.
  EXPECT_EQ(ReadAt(**v, 0, before.size()), before);
  EXPECT_TRUE((*v)->Flush().ok());
  EXPECT_TRUE(f.cat->List().ok());

  f.Off();
  const std::string after = Pattern(4096, 3);
  ASSERT_TRUE(WriteAt(**v, 5 * kBlock + 100, after).ok());
  ASSERT_TRUE(WriteAt(**v, 10, after, /*fua=*/true).ok());
  ASSERT_TRUE((*v)->Close().ok());

  auto again = f.cat->Open("vm");
  ASSERT_TRUE(again.ok());
  std::string expect = before;
  expect.replace(10, after.size(), after);
  EXPECT_EQ(ReadAt(**again, 0, before.size()), expect);
  EXPECT_EQ(ReadAt(**again, 5 * kBlock + 100, after.size()), after);
  ASSERT_TRUE((*again)->Close().ok());
  auto report = CheckStore(*f.store, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

// Both ways a copy-up runs: before the write returns (deferral off, as on RADOS), and
// deferred (the write is held; the copy's error comes with the next flush, and with every
// flush after it until a retry lands the held write).
void CopyUpFailureIsNoSpace(bool deferred) {
  Faulty f("error=enospc&ops=copy", "mem:", testing::ModeOptions(deferred ? "background" : "off"));
  ASSERT_TRUE(f.cat->Create("vm", 4 * kBlock, kBlock).ok());
  auto v = f.cat->Open("vm");
  ASSERT_TRUE(v.ok());
  const std::string data = Pattern(kBlock, 4);
  ASSERT_TRUE(WriteAt(**v, 0, data).ok());
  ASSERT_TRUE(WriteAt(**v, 2 * kBlock, Pattern(2 * kBlock, 7)).ok());  // blocks 2 and 3 shared too
  ASSERT_TRUE((*v)->CreateSnapshot("s").ok());
  f.On();
  if (deferred) {
    ASSERT_TRUE(WriteAt(**v, 100, "x").ok());  // held
    EXPECT_EQ((*v)->Flush().code(), Code::kNoSpace);
    EXPECT_EQ((*v)->Flush().code(), Code::kNoSpace);  // still failing: still reported
    std::string got(10, '\0');
    EXPECT_EQ((*v)->Read(95, std::span<char>(got.data(), got.size())).code(), Code::kNoSpace);
  } else {
    EXPECT_EQ(WriteAt(**v, 100, "x").code(), Code::kNoSpace);  // needs a copy of the shared block
  }
  EXPECT_TRUE(WriteAt(**v, kBlock, Pattern(kBlock, 5)).ok());  // a whole block needs none
  if (deferred) {
    // Held writes into blocks that a trim or a whole-block write then replaces are
    // forgotten with their copy-up: neither needs the copy that keeps failing.
    ASSERT_TRUE(WriteAt(**v, 2 * kBlock + 5, "y").ok());  // held for block 2
    ASSERT_TRUE((*v)->Trim(2 * kBlock, kBlock).ok());
    ASSERT_TRUE(WriteAt(**v, 3 * kBlock + 5, "y").ok());  // held for block 3
    ASSERT_TRUE(WriteAt(**v, 3 * kBlock, Pattern(kBlock, 6)).ok());
    EXPECT_EQ((*v)->Flush().code(), Code::kNoSpace);  // block 0's copy-up still fails
    EXPECT_EQ(ReadAt(**v, 2 * kBlock, kBlock), std::string(kBlock, '\0'));
    EXPECT_EQ(ReadAt(**v, 3 * kBlock, kBlock), Pattern(kBlock, 6));
  }
  f.Off();
  if (deferred) {
    ASSERT_TRUE((*v)->Flush().ok());  // the retry copies the block and lands the held write
  } else {
    ASSERT_TRUE(WriteAt(**v, 100, "x").ok());
  }
  ASSERT_TRUE((*v)->Close().ok());
  OpenOptions ro;
  ro.read_only = true;
  auto snap = f.cat->Open("vm@s", ro);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(ReadAt(**snap, 0, kBlock), data);
  auto head = f.cat->Open("vm", ro);
  ASSERT_TRUE(head.ok());
  std::string expect = data;
  expect[100] = 'x';
  EXPECT_EQ(ReadAt(**head, 0, kBlock), expect);
}

// A whole-block write replaces a pending copy-up only once it succeeded: when it fails, the
// writes held before it were acknowledged and must still read back (found by crash_test).
TEST(FaultVolumeTest, AFailedWholeBlockWriteKeepsTheWritesHeldBeforeIt) {
  Faulty f("error=enospc&ops=write", "mem:", testing::ModeOptions("on-demand"));  // held until needed
  ASSERT_TRUE(f.cat->Create("vm", 2 * kBlock, kBlock).ok());
  auto v = f.cat->Open("vm");
  ASSERT_TRUE(v.ok());
  std::string expect = Pattern(kBlock, 10);
  ASSERT_TRUE(WriteAt(**v, 0, expect).ok());
  ASSERT_TRUE((*v)->CreateSnapshot("s").ok());
  ASSERT_TRUE(WriteAt(**v, 10, "held").ok());
  expect.replace(10, 4, "held");
  f.On();
  EXPECT_EQ(WriteAt(**v, 0, Pattern(kBlock, 11)).code(), Code::kNoSpace);
  EXPECT_EQ((*v)->Trim(0, kBlock).code(), Code::kOk);  // a trim needs no write: it replaces it
  f.Off();
  EXPECT_EQ(ReadAt(**v, 0, kBlock), std::string(kBlock, '\0'));
  // Again, with a zero that must allocate (no hole) failing instead.
  ASSERT_TRUE(WriteAt(**v, 0, expect).ok());
  ASSERT_TRUE((*v)->CreateSnapshot("t").ok());
  ASSERT_TRUE(WriteAt(**v, 20, "more").ok());
  expect.replace(20, 4, "more");
  f.On();
  EXPECT_EQ(WriteAt(**v, 0, Pattern(kBlock, 12)).code(), Code::kNoSpace);
  EXPECT_NE((*v)->WriteZeroes(0, kBlock, /*may_trim=*/false).code(), Code::kOk);
  f.Off();
  EXPECT_EQ(ReadAt(**v, 0, kBlock), expect);
  ASSERT_TRUE((*v)->Flush().ok());
  ASSERT_TRUE((*v)->Close().ok());
  auto again = f.cat->Open("vm");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ReadAt(**again, 0, kBlock), expect);
}

// The same on a natively asynchronous store, where writes into a block the map calls ours
// skip the blocking path (TryWriteAsync): a failed whole-block zero must leave the block
// shared while its copy-up is pending. It used to name the new object first, so a later
// asynchronous write went straight into it and the retried copy-up then copied over it.
TEST(FaultVolumeTest, AFailedWholeBlockZeroLeavesAPendingCopyUpInChargeOfItsBlock) {
  // Deferral needs copiers here.
  Faulty f("error=eio&ops=copy|zero", "delay:ms=0&async=2+mem:", testing::ModeOptions("background"));
  ASSERT_TRUE(f.store->capabilities().native_async);
  ASSERT_TRUE(f.cat->Create("vm", 2 * kBlock, kBlock).ok());
  auto v = f.cat->Open("vm");
  ASSERT_TRUE(v.ok());
  std::string expect = Pattern(kBlock, 20);
  ASSERT_TRUE(WriteAt(**v, 0, expect).ok());
  ASSERT_TRUE((*v)->CreateSnapshot("s").ok());
  f.On();  // copies fail: the copy-up stays pending with what it holds
  ASSERT_TRUE(WriteAt(**v, 10, "held").ok());
  expect.replace(10, 4, "held");
  EXPECT_NE((*v)->WriteZeroes(0, kBlock, /*may_trim=*/false).code(), Code::kOk);
  // Straight into the block's object if the map names it, else held like the write above.
  const std::string later = "later";
  std::promise<Status> done;
  auto reply = done.get_future();
  if (!testing::Fast(**v).TryWriteAsync(100, std::span<const char>(later.data(), later.size()),
                           [&](Status st) { done.set_value(std::move(st)); })) {
    done.set_value((*v)->Write(100, std::span<const char>(later.data(), later.size())));
  }
  ASSERT_TRUE(reply.get().ok());
  expect.replace(100, later.size(), later);
  f.Off();
  EXPECT_TRUE(ReadAt(**v, 0, kBlock) == expect) << "a write acknowledged after the failed zero was lost";
  ASSERT_TRUE((*v)->Flush().ok());
  ASSERT_TRUE((*v)->Close().ok());
  auto again = f.cat->Open("vm");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(ReadAt(**again, 0, kBlock) == expect) << "not as written after reopening";
}

// A shrink whose new last map chunk cannot be read fails and leaves the volume as it was.
// The map used to be cut before that chunk was loaded: the failed shrink left a map
// shorter than the volume, writes past it failed, and the next header written paired the
// old size with the short chunk table, a volume that no longer opened (found in review).
TEST(FaultVolumeTest, AShrinkThatCannotLoadTheMapLeavesTheVolumeAsItWas) {
  Faulty f("error=eio&ops=get", "mem:");
  const uint64_t chunk_bytes = uint64_t{volume::kEntriesPerChunk} * kBlock;
  ASSERT_TRUE(f.cat->Create("vm", 2 * chunk_bytes, kBlock).ok());
  {
    auto v = f.cat->Open("vm");  // data in both map chunks; closed, so none stays loaded
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(WriteAt(**v, 0, "first chunk").ok());
    ASSERT_TRUE(WriteAt(**v, chunk_bytes, "second chunk").ok());
    ASSERT_TRUE((*v)->Close().ok());
  }
  auto v = f.cat->Open("vm");
  ASSERT_TRUE(v.ok());
  // The second chunk loaded (what the shrink drops), the first not (the new last one).
  EXPECT_EQ(ReadAt(**v, chunk_bytes, 12), "second chunk");
  f.On();
  EXPECT_FALSE((*v)->Resize(chunk_bytes, /*allow_shrink=*/true).ok());  // to exactly one chunk
  f.Off();
  EXPECT_EQ((*v)->size(), 2 * chunk_bytes);
  EXPECT_EQ(ReadAt(**v, chunk_bytes, 12), "second chunk");
  ASSERT_TRUE(WriteAt(**v, chunk_bytes + kBlock, "later").ok());
  ASSERT_TRUE((*v)->CreateSnapshot("s").ok());  // writes the header
  ASSERT_TRUE((*v)->Close().ok());
  auto again = f.cat->Open("vm");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ReadAt(**again, 0, 11), "first chunk");
  EXPECT_EQ(ReadAt(**again, chunk_bytes + kBlock, 5), "later");
}

TEST(FaultVolumeTest, SnapshotCopyUpFailureIsNoSpaceToo) { CopyUpFailureIsNoSpace(false); }

// Syncs wait at a gate once armed, so a test can act while a flush is inside its sync.
class GatedSyncStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<bool> armed{false}, waiting{false};
  void Open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  std::atomic<int> metadata_writes{0};  // Put, Create, CompareAndSwap: map chunks, headers
  Status Put(const std::string& n, std::string_view d) override {
    metadata_writes++;
    return ForwardingStore::Put(n, d);
  }
  Status Create(const std::string& n, std::string_view d) override {
    metadata_writes++;
    return ForwardingStore::Create(n, d);
  }
  Status CompareAndSwap(const std::string& n, std::string_view expected, std::string_view desired) override {
    metadata_writes++;
    return ForwardingStore::CompareAndSwap(n, expected, desired);
  }
  void Sync(std::vector<std::string> names, Done done) override {
    if (armed.exchange(false)) Wait();
    ForwardingStore::Sync(std::move(names), std::move(done));
  }
  // With get_gate set, the first Get of a name containing it stalls instead of a Sync.
  std::string get_gate;
  Result<std::string> Get(const std::string& n) override {
    if (!get_gate.empty() && n.find(get_gate) != std::string::npos && get_armed.exchange(false)) Wait();
    return ForwardingStore::Get(n);
  }
  std::atomic<bool> get_armed{false};

 private:
  void Wait() {
    std::unique_lock lock(mu_);
    waiting = true;
    cv_.wait(lock, [&] { return open_; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A write that completes while a flush is syncing must not be named by the map that flush
// persists unless its object was in that sync: else a power cut leaves an entry whose object
// never reached the disk. (The flush used to read the dirty set, sync, and only then encode
// the map, which by then could name the new object.)
TEST(FaultVolumeTest, AWriteDuringAFlushIsNotInItsMapUnlessItsObjectWasSynced) {
  auto disk = std::make_shared<MemStore>();
  auto power = std::make_shared<NonDurableStore>(disk);
  auto gated = std::make_shared<GatedSyncStore>(power);
  auto cat = Catalog::Open(gated);
  ASSERT_TRUE(cat.ok());
  ASSERT_TRUE((*cat)->Create("vm", 4 * kBlock, kBlock).ok());
  auto v = (*cat)->Open("vm");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(WriteAt(**v, 0, "first").ok());  // block 0: something for the flush to sync
  gated->armed = true;
  auto flush = std::async(std::launch::async, [&] { return (*v)->Flush(); });
  for (int i = 0; i < 1000 && !gated->waiting.load(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(gated->waiting.load());
  ASSERT_TRUE(WriteAt(**v, 2 * kBlock, "second").ok());  // block 2, a hole: a new object
  gated->Open();
  ASSERT_TRUE(flush.get().ok());
  power->Crash(CrashMode::kDrop, 0);
  v->reset();
  auto report = CheckStore(*disk, {});
  ASSERT_TRUE(report.ok());
  for (const CheckProblem& p : report->problems) ADD_FAILURE() << p.object << ": " << p.problem;
}
// A flush whose sync outlasts the volume's lease must not write the map or the header
// after it: by then another owner may be writing the volume. It checked the lease only
// when it started (found in review).
TEST(FaultVolumeTest, AFlushWritesNoMetadataOnceTheLeaseLapsedDuringItsSync) {
  auto gated = std::make_shared<GatedSyncStore>(std::make_shared<NonDurableStore>(std::make_shared<MemStore>()));
  auto clock = std::make_shared<SimClock>();  // the lease lapses when the test says
  VolumeOptions options;
  options.clock = clock;
  auto cat = Catalog::Open(gated, options);
  ASSERT_TRUE(cat.ok());
  ASSERT_TRUE((*cat)->Create("vm", 4 * kBlock, kBlock).ok());
  OpenOptions first;
  first.owner = "first";
  first.lease_ms = 300;
  auto v = (*cat)->Open("vm", first);
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(WriteAt(**v, 0, "data").ok());  // a new object and a map change to persist
  gated->armed = true;
  auto flush = std::async(std::launch::async, [&] { return (*v)->Flush(); });
  for (int i = 0; i < 1000 && !gated->waiting.load(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(gated->waiting.load());
  // Another owner takes the lock over while the sync stalls.
  ASSERT_NO_FATAL_FAILURE(testing::TakeOverLock(*gated, "v." + (*cat)->Info("vm")->id + ".lock", "second"));
  clock->Advance(400);  // past the lease: a renewal finds "second" there
  const int before = gated->metadata_writes.load();
  gated->Open();
  EXPECT_EQ(flush.get().code(), Code::kIOError);
  EXPECT_EQ(gated->metadata_writes.load(), before) << "the flush wrote metadata without the lease";
  EXPECT_EQ((*v)->Close().code(), Code::kIOError);
}

// Rollback and snapshot removal read snapshot records and maps after their flush; a lease
// that lapses during those reads must stop them before the header update and the deletes.
void LeaseLapsesWhileReadingSnapshots(bool rollback) {
  auto gated = std::make_shared<GatedSyncStore>(std::make_shared<NonDurableStore>(std::make_shared<MemStore>()));
  auto clock = std::make_shared<SimClock>();  // the lease lapses when the test says
  VolumeOptions options;
  options.clock = clock;
  auto cat = Catalog::Open(gated, options);
  ASSERT_TRUE(cat.ok());
  ASSERT_TRUE((*cat)->Create("vm", 4 * kBlock, kBlock).ok());
  ASSERT_TRUE((*cat)->CreateSnapshot("vm", "s").ok());
  OpenOptions first;
  first.owner = "first";
  first.lease_ms = 300;
  auto v = (*cat)->Open("vm", first);
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(WriteAt(**v, 0, "data").ok());
  ASSERT_TRUE((*v)->Flush().ok());
  auto* head = dynamic_cast<volume::OpenVolume*>(v->get());
  ASSERT_NE(head, nullptr);
  gated->get_gate = ".snap.";
  gated->get_armed = true;
  auto op = std::async(std::launch::async, [&] {
    return rollback ? head->Rollback("s") : head->RemoveSnapshot("s", [](const volume::SnapshotEntry&) {
      return Result<std::vector<std::string>>(std::vector<std::string>{});
    });
  });
  for (int i = 0; i < 1000 && !gated->waiting.load(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(gated->waiting.load());
  ASSERT_NO_FATAL_FAILURE(testing::TakeOverLock(*gated, "v." + (*cat)->Info("vm")->id + ".lock", "second"));
  clock->Advance(400);  // past the lease: a renewal finds "second" there
  const int before = gated->metadata_writes.load();
  auto objects_before = gated->List("v.");
  gated->Open();
  EXPECT_EQ(op.get().code(), Code::kIOError);
  EXPECT_EQ(gated->metadata_writes.load(), before) << "the header was written without the lease";
  EXPECT_EQ(gated->List("v.").value(), objects_before.value()) << "objects were deleted without the lease";
}

TEST(FaultVolumeTest, ARollbackStopsOnceTheLeaseLapsedDuringItsReads) { LeaseLapsesWhileReadingSnapshots(true); }
TEST(FaultVolumeTest, ASnapshotRemovalStopsOnceTheLeaseLapsedDuringItsReads) {
  LeaseLapsesWhileReadingSnapshots(false);
}

TEST(FaultVolumeTest, DeferredCopyUpFailureFailsEveryFlushUntilARetryLandsTheWrite) {
  CopyUpFailureIsNoSpace(true);
}

TEST(FaultVolumeTest, ReadAndFlushErrorsKeepTheirCodes) {
  Faulty eio("error=eio&ops=read", "mem:");
  ASSERT_TRUE(eio.cat->Create("vm", 2 * kBlock, kBlock).ok());
  auto v = eio.cat->Open("vm");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(WriteAt(**v, 0, "hello").ok());
  eio.On();
  std::string buf(5, '\0');
  Status st = (*v)->Read(0, std::span<char>(buf.data(), 5));
  EXPECT_EQ(st.code(), Code::kIOError) << st.ToString();
  EXPECT_EQ(st.sys_errno(), EIO);
  eio.Off();
  EXPECT_EQ(ReadAt(**v, 0, 5), "hello");

  Faulty slow("error=etimedout&ms=5&ops=sync", "nondurable:+mem:");  // mem: alone never needs a sync
  ASSERT_TRUE(slow.cat->Create("vm", 2 * kBlock, kBlock).ok());
  auto w = slow.cat->Open("vm");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(WriteAt(**w, 0, "data").ok());
  slow.On();
  Status fl = (*w)->Flush();
  EXPECT_EQ(fl.code(), Code::kTimedOut) << fl.ToString();
  EXPECT_EQ(fl.sys_errno(), ETIMEDOUT);
  EXPECT_EQ(WriteAt(**w, 0, "more", /*fua=*/true).code(), Code::kTimedOut);
  slow.Off();
  ASSERT_TRUE((*w)->Flush().ok());  // the writes are still dirty and get flushed now
  ASSERT_TRUE((*w)->Close().ok());
  OpenOptions ro;
  ro.read_only = true;
  auto r = slow.cat->Open("vm", ro);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReadAt(**r, 0, 4), "more");
}

}  // namespace
}  // namespace skerry

namespace skerry {
namespace {

// A flush whose header update fails has already pointed the in-memory chunk table at the
// new chunk objects; the next flush must still write the header, or the data it reports
// as flushed is not reachable after a reopen (found by crash_test).
TEST(FaultVolumeTest, AFailedHeaderUpdateIsRetriedByTheNextFlush) {
  Faulty f("error=eio&ops=cas", "mem:");
  ASSERT_TRUE(f.cat->Create("vm", 4 * kBlock, kBlock).ok());
  auto v = f.cat->Open("vm");
  ASSERT_TRUE(v.ok());
  const std::string data = Pattern(5000, 6);
  ASSERT_TRUE(WriteAt(**v, 1000, data).ok());
  f.On();
  EXPECT_EQ((*v)->Flush().code(), Code::kIOError);  // the chunk is written, the header not
  f.Off();
  ASSERT_TRUE((*v)->Flush().ok());
  ASSERT_TRUE((*v)->Close().ok());
  auto again = f.cat->Open("vm");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(ReadAt(**again, 1000, data.size()) == data);
}

TEST(FaultVolumeTest, AFailedResizeHeaderUpdateIsRetriedByTheNextFlush) {
  Faulty f("error=eio&ops=cas", "mem:");
  ASSERT_TRUE(f.cat->Create("vm", 4 * kBlock, kBlock).ok());
  auto v = f.cat->Open("vm");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(WriteAt(**v, 0, "first").ok());
  ASSERT_TRUE((*v)->Flush().ok());  // the header names the map chunk from now on
  f.On();
  EXPECT_EQ((*v)->Resize(6 * kBlock, false).code(), Code::kIOError);
  f.Off();
  EXPECT_EQ((*v)->size(), 6 * kBlock);  // the open volume already serves the new size
  const std::string data = Pattern(100, 7);
  ASSERT_TRUE(WriteAt(**v, 5 * kBlock, data).ok());
  ASSERT_TRUE((*v)->Flush().ok());
  ASSERT_TRUE((*v)->Close().ok());
  auto again = f.cat->Open("vm");
  ASSERT_TRUE(again.ok());
  ASSERT_EQ((*again)->size(), 6 * kBlock);
  EXPECT_TRUE(ReadAt(**again, 5 * kBlock, data.size()) == data);
  auto info = f.cat->Info("vm");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 6 * kBlock);
}

}  // namespace
}  // namespace skerry

namespace skerry {
namespace {

// A store that loses unsynced writes on Crash (`power`), under one that fails `ops` with
// EIO while enabled (`faults`, off at first); a volume "vm" of 4 blocks on them, open.
struct PowerAndFaults {
  PowerAndFaults(const std::string& ops, const VolumeOptions& options) {
    FaultRule rule;
    rule.error = FaultError::kEIO;
    rule.ops = *ParseStoreOps(ops);
    faults = std::make_shared<FaultStore>(power, std::vector<FaultRule>{rule});
    faults->set_enabled(false);
    auto opened = Catalog::Open(faults, options);
    EXPECT_TRUE(opened.ok());
    cat = std::move(*opened);
    EXPECT_TRUE(cat->Create("vm", 4 * kBlock, kBlock).ok());
    auto v = cat->Open("vm");
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (v.ok()) vol = std::move(*v);
  }
  // Pulls the power, closes nothing, and demands a sound store from what reached the disk.
  void CrashAndCheck() {
    power->Crash(CrashMode::kDrop, 0);
    vol.reset();
    auto report = CheckStore(*disk, {});
    ASSERT_TRUE(report.ok());
    for (const CheckProblem& p : report->problems) ADD_FAILURE() << p.object << ": " << p.problem;
  }
  std::shared_ptr<MemStore> disk = std::make_shared<MemStore>();
  std::shared_ptr<NonDurableStore> power = std::make_shared<NonDurableStore>(disk);
  std::shared_ptr<FaultStore> faults;
  std::unique_ptr<Catalog> cat;
  std::unique_ptr<Volume> vol;
};

// A write or zeroing that fails after its block was made private (a fresh object for a
// hole, a copy of a shared block) has already pointed the map at that object; the next
// flush persists the map, so it must sync the object too, or a power loss leaves the map
// pointing at an object that never reached the disk (found by crash_test).
void FailAfterMakePrivate(const std::string& ops, bool shared) {
  // The copy-up before the write (a deferred one is tested below).
  PowerAndFaults f(ops, testing::ModeOptions("off"));
  ASSERT_TRUE(f.vol);
  auto& faults = f.faults;
  auto* v = &f.vol;
  if (shared) {
    ASSERT_TRUE(WriteAt(**v, 0, Pattern(kBlock, 8)).ok());
    ASSERT_TRUE((*v)->CreateSnapshot("s").ok());
  }
  faults->set_enabled(true);
  Status st = ops == "zero" ? (*v)->WriteZeroes(100, 1000, /*may_trim=*/false) : WriteAt(**v, 100, "data");
  EXPECT_EQ(st.code(), Code::kIOError) << st.ToString();
  faults->set_enabled(false);
  ASSERT_TRUE((*v)->Flush().ok());
  f.CrashAndCheck();
}

TEST(FaultVolumeTest, AFailedZeroOfAHoleLeavesNoDanglingEntryAfterACrash) { FailAfterMakePrivate("zero", false); }
TEST(FaultVolumeTest, AFailedWriteAfterCopyUpLeavesNoDanglingEntryAfterACrash) { FailAfterMakePrivate("write", true); }

// A deferred copy-up whose held write fails: the map must not name the copy until the
// write is in it, and once a flush succeeds the write survives a power loss.
TEST(FaultVolumeTest, AFailedHeldWriteIsRetriedAndSurvivesACrashOnceFlushed) {
  PowerAndFaults f("write", testing::ModeOptions("background"));
  ASSERT_TRUE(f.vol);
  auto& faults = f.faults;
  auto* v = &f.vol;
  const std::string base = Pattern(kBlock, 8);
  ASSERT_TRUE(WriteAt(**v, 0, base).ok());
  ASSERT_TRUE((*v)->CreateSnapshot("s").ok());
  faults->set_enabled(true);
  ASSERT_TRUE(WriteAt(**v, 100, "data").ok());  // held; the copy works, the write into it fails
  EXPECT_EQ((*v)->Flush().code(), Code::kIOError);
  faults->set_enabled(false);
  ASSERT_TRUE((*v)->Flush().ok());
  f.CrashAndCheck();
  auto after = Catalog::Open(f.disk);
  ASSERT_TRUE(after.ok());
  OpenOptions ro;
  ro.read_only = true;
  auto head = (*after)->Open("vm", ro);
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  std::string expect = base;
  expect.replace(100, 4, "data");
  EXPECT_EQ(ReadAt(**head, 0, kBlock), expect);
}

}  // namespace
}  // namespace skerry

namespace skerry {
namespace {

// Growing a volume past the end of its last map chunk (4096 blocks) must make that chunk,
// if already loaded with fewer entries, a full one; else later writes to its new blocks
// index past its entries (found by crash_test as a garbage entry, "invalid object name ''").
TEST(FoundByCrashTest, GrowingPastAChunkKeepsTheOldLastChunkWhole) {
  auto store = std::make_shared<MemStore>();
  auto cat = Catalog::Open(store);
  ASSERT_TRUE(cat.ok());
  ASSERT_TRUE((*cat)->Create("vm", 1000 * uint64_t{kBlock}, kBlock).ok());
  auto v = (*cat)->Open("vm");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(WriteAt(**v, 10 * uint64_t{kBlock}, "early").ok());  // loads chunk 0 with 1000 entries
  ASSERT_TRUE((*v)->Resize(5000 * uint64_t{kBlock}, false).ok());    // two chunks now
  const std::string data = Pattern(4096, 9);
  ASSERT_TRUE(WriteAt(**v, 2000 * uint64_t{kBlock}, data).ok());   // block 2000 of chunk 0
  ASSERT_TRUE(WriteAt(**v, 4500 * uint64_t{kBlock}, data).ok());   // chunk 1
  EXPECT_TRUE(ReadAt(**v, 2000 * uint64_t{kBlock}, data.size()) == data);
  ASSERT_TRUE((*v)->Close().ok());
  auto again = (*cat)->Open("vm");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(ReadAt(**again, 2000 * uint64_t{kBlock}, data.size()) == data);
  EXPECT_TRUE(ReadAt(**again, 4500 * uint64_t{kBlock}, data.size()) == data);
  EXPECT_TRUE(ReadAt(**again, 10 * uint64_t{kBlock}, 5) == "early");
  auto report = CheckStore(*store, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

// A volume "vm" of 4 blocks open over two fault layers that tests switch on one at a time
// (compare-and-swaps, syncs), over a store that loses unsynced writes in a power cut.
struct TwoFaults {
  explicit TwoFaults(const VolumeOptions& options) {
    FaultRule s;
    s.error = FaultError::kEIO;
    s.ops = *ParseStoreOps("sync");
    syncs = std::make_shared<FaultStore>(power, std::vector<FaultRule>{s});
    syncs->set_enabled(false);
    FaultRule c;
    c.error = FaultError::kEIO;
    c.ops = *ParseStoreOps("cas");
    cas = std::make_shared<FaultStore>(syncs, std::vector<FaultRule>{c});
    cas->set_enabled(false);
    cat = std::move(*Catalog::Open(cas, options));
    EXPECT_TRUE(cat->Create("vm", 4 * kBlock, kBlock).ok());
    auto v = cat->Open("vm");
    EXPECT_TRUE(v.ok());
    vol = std::move(*v);
  }
  // Power cut; then the volume as the rebooted store has it (read-only: the lock is stale).
  std::unique_ptr<Volume> CrashAndReopen() {
    power->Crash(CrashMode::kDrop, 0);
    vol.reset();
    auto after = Catalog::Open(disk);
    EXPECT_TRUE(after.ok());
    after_cat = std::move(*after);
    OpenOptions ro;
    ro.read_only = true;
    auto head = after_cat->Open("vm", ro);
    EXPECT_TRUE(head.ok()) << head.status().ToString();
    return std::move(*head);
  }
  std::shared_ptr<MemStore> disk = std::make_shared<MemStore>();
  std::shared_ptr<NonDurableStore> power = std::make_shared<NonDurableStore>(disk);
  std::shared_ptr<FaultStore> syncs, cas;
  std::unique_ptr<Catalog> cat, after_cat;
  std::unique_ptr<Volume> vol;
};

// A shrink whose header update failed still owes it; a grow then must not write its larger
// size over the shrink's chunk not yet shortened (and before its zeroed tail is synced): a
// crash there showed the bytes the shrink dropped at the grown size.
TEST(FaultVolumeTest, AGrowAfterAShrinkWhoseHeaderFailedNeverShowsTheDroppedBytesAfterACrash) {
  TwoFaults f(testing::ModeOptions("off"));
  ASSERT_TRUE(f.vol);
  const std::string data = Pattern(4 * kBlock, 21);
  ASSERT_TRUE(WriteAt(*f.vol, 0, data).ok());
  ASSERT_TRUE(f.vol->Flush().ok());
  f.cas->set_enabled(true);
  EXPECT_FALSE(f.vol->Resize(kBlock + 512, true).ok());  // its header-first update fails
  f.cas->set_enabled(false);
  EXPECT_EQ(f.vol->size(), kBlock + 512);  // the open volume serves the shrunk size
  f.syncs->set_enabled(true);
  EXPECT_FALSE(f.vol->Resize(3 * kBlock, false).ok());  // the grow's flush fails at its sync
  f.syncs->set_enabled(false);
  auto head = f.CrashAndReopen();
  ASSERT_TRUE(head);
  const uint64_t size = head->size();
  const std::string got = ReadAt(*head, 0, size);
  const std::string grown = data.substr(0, kBlock + 512) + std::string(2 * kBlock - 512, '\0');
  const bool old_state = (size == 4 * kBlock && got == data) || (size == kBlock + 512 && got == data.substr(0, size));
  const bool new_state = size == 3 * kBlock && got == grown;
  EXPECT_TRUE(old_state || new_state) << "size " << size << ": bytes dropped by the shrink show again: "
                                      << (got.substr(kBlock + 512) == data.substr(kBlock + 512, size - kBlock - 512));
}

// A resize that failed after changing the in-memory size, retried with the same size,
// returned OK without writing anything (the volume had that size already); a crash lost it.
TEST(FaultVolumeTest, ARetriedResizeThatReturnsOkIsDurable) {
  TwoFaults f(testing::ModeOptions("off"));
  ASSERT_TRUE(f.vol);
  f.cas->set_enabled(true);
  EXPECT_FALSE(f.vol->Resize(kBlock, true).ok());
  f.cas->set_enabled(false);
  ASSERT_TRUE(f.vol->Resize(kBlock, true).ok());  // the retry reports success
  auto head = f.CrashAndReopen();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->size(), kBlock) << "a resize that returned OK was lost by a crash";
}

}  // namespace
}  // namespace skerry
