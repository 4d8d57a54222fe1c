// RadosStore against a real Ceph cluster: the store contract (one pool, and metadata and
// data in two pools), then what is particular to RADOS: URIs, which pool an object goes
// to, native asynchronous completion, compare-and-swap edge cases, locks between two
// client connections, breaking a lock with fencing (blocklisting), and a dead cluster
// turning into an error instead of a hang.
//
// The cluster comes from the environment, set by the CTest fixture (tests/rados/CMakeLists.txt)
// that starts one with scripts/ceph-cluster.sh:
//   SKERRY_RADOS_CONF       path of its ceph.conf (required: without it every test fails)
//   SKERRY_RADOS_POOL       metadata pool (default "skerry")
//   SKERRY_RADOS_DATA_POOL  second pool for the data_pool tests (default "skerry-data")
// Every test works in a RADOS namespace of its own, emptied when its store is released.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "skerry/object_store.h"
#include "store/rados/rados_store.h"
#include "store/store_contract.h"

namespace skerry {
namespace {

std::string Env(const char* name, const char* dflt = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

std::string Conf() { return Env("SKERRY_RADOS_CONF"); }
std::string Pool() { return Env("SKERRY_RADOS_POOL", "skerry"); }
std::string DataPool() { return Env("SKERRY_RADOS_DATA_POOL", "skerry-data"); }

// A namespace no other test (or earlier run) uses.
std::string NewNamespace(const std::string& tag) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd() % 100000);
}

RadosStoreOptions Options(bool split, const std::string& ns) {
  RadosStoreOptions o;
  o.pool = Pool();
  o.conf = Conf();
  o.ns = ns;
  if (split) o.data_pool = DataPool();
  return o;
}

// Opens a store in a new namespace; releasing it deletes every object it left there.
std::shared_ptr<RadosStore> OpenTestStore(bool split, std::string* ns_out = nullptr) {
  if (Conf().empty()) {
    ADD_FAILURE() << "SKERRY_RADOS_CONF is not set: run this through ctest (its fixture starts a cluster "
                     "with scripts/ceph-cluster.sh) or point it at a cluster's ceph.conf";
    return nullptr;
  }
  std::string ns = NewNamespace(split ? "split" : "one");
  if (ns_out) *ns_out = ns;
  Result<std::shared_ptr<RadosStore>> store = RadosStore::Open(Options(split, ns));
  if (!store.ok()) {
    ADD_FAILURE() << "cannot open the test cluster: " << store.status().ToString();
    return nullptr;
  }
  std::shared_ptr<RadosStore> s = *store;
  return std::shared_ptr<RadosStore>(s.get(), [s](RadosStore*) mutable {
    Result<std::vector<std::string>> names = s->List("");
    if (names.ok()) {
      for (const std::string& n : *names) s->Delete(n);
    }
    s.reset();
  });
}

INSTANTIATE_TEST_SUITE_P(
    Rados, StoreContractTest,
    ::testing::Values(StoreContractParam{"rados", [] { return std::shared_ptr<ObjectStore>(OpenTestStore(false)); }},
                      StoreContractParam{"rados_data_pool",
                                         [] { return std::shared_ptr<ObjectStore>(OpenTestStore(true)); }}),
    StoreContractName);

Status Write(ObjectStore& s, const std::string& name, uint64_t off, std::string_view data, bool fresh = false) {
  return s.WriteBlocking(name, off, std::span<const char>(data.data(), data.size()), fresh);
}

// ---- URIs

TEST(RadosUriTest, ParsesAndFormatsEveryParameter) {
  auto o = ParseRadosUri("rados:vms?conf=/etc/ceph/x.conf&id=skerry&namespace=prod&data_pool=vms-ec");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->pool, "vms");
  EXPECT_EQ(o->conf, "/etc/ceph/x.conf");
  EXPECT_EQ(o->id, "skerry");
  EXPECT_EQ(o->ns, "prod");
  EXPECT_EQ(o->data_pool, "vms-ec");
  EXPECT_EQ(FormatRadosUri(*o), "rados:vms?conf=/etc/ceph/x.conf&id=skerry&namespace=prod&data_pool=vms-ec");
  EXPECT_EQ(FormatRadosUri(*ParseRadosUri("rados:p?namespace=n")), "rados:p?namespace=n");
  EXPECT_EQ(FormatRadosUri(*ParseRadosUri("rados:p")), "rados:p");
  // A data pool equal to the pool is no data pool.
  EXPECT_EQ(FormatRadosUri(*ParseRadosUri("rados:p?data_pool=p")), "rados:p");
}

TEST(RadosUriTest, RefusesBadUris) {
  for (const char* bad : {"rados:", "rados:?conf=/x", "rados:p?conf", "rados:p?conf=", "rados:p?pool=q",
                          "rados:p?id=a&id=b"}) {
    EXPECT_EQ(ParseRadosUri(bad).status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(OpenStore(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseRadosUri("dir:/x").status().code(), Code::kInvalidArgument);
  EXPECT_NE(ParseRadosUri("rados:p?size=3").status().message().find("known: conf, id, namespace, data_pool"),
            std::string::npos);
}

TEST(RadosUriTest, DataObjectsAreBlocksAndContentObjects) {
  EXPECT_TRUE(RadosStore::IsDataObject("v.0123abcd.b.1.42"));
  EXPECT_TRUE(RadosStore::IsDataObject("c.e3b0c44298fc1c14"));
  EXPECT_FALSE(RadosStore::IsDataObject("v.0123abcd.header"));
  EXPECT_FALSE(RadosStore::IsDataObject("v.0123abcd.map.1.0"));
  EXPECT_FALSE(RadosStore::IsDataObject("v.0123abcd.lock"));
  EXPECT_FALSE(RadosStore::IsDataObject("v.0123abcd.snap.3"));
  EXPECT_FALSE(RadosStore::IsDataObject("skerry.directory"));
  EXPECT_FALSE(RadosStore::IsDataObject("v.b.1"));  // the id is the second field
  EXPECT_FALSE(RadosStore::IsDataObject("c"));
}

// ---- opening

TEST(RadosStoreTest, OpenStoreGivesARadosStoreWithItsCapabilities) {
  std::string ns = NewNamespace("open");
  std::string uri = "rados:" + Pool() + "?conf=" + Conf() + "&namespace=" + ns;
  auto store = OpenStore(uri);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->uri(), uri);
  StoreCapabilities c = (*store)->capabilities();
  EXPECT_TRUE(c.native_async);
  EXPECT_TRUE(c.durable_writes);
  EXPECT_TRUE(c.server_side_copy);
  EXPECT_TRUE(c.persistent);
  EXPECT_FALSE(c.cheap_copy);
  EXPECT_TRUE(c.fences_lock_holders);
  ASSERT_TRUE((*store)->Put("x", "persisted").ok());
  auto again = OpenStore((*store)->uri());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*(*again)->Get("x"), "persisted");
  EXPECT_TRUE((*store)->Delete("x").ok());
}

TEST(RadosStoreTest, MissingPoolIsNotFound) {
  auto store = OpenStore("rados:no-such-pool?conf=" + Conf());
  EXPECT_TRUE(store.status().IsNotFound()) << store.status().ToString();
  store = OpenStore("rados:" + Pool() + "?conf=" + Conf() + "&data_pool=no-such-pool");
  EXPECT_TRUE(store.status().IsNotFound()) << store.status().ToString();
  store = OpenStore("rados:" + Pool() + "?conf=/nonexistent/ceph.conf");
  EXPECT_FALSE(store.ok());
}

// A cluster that does not answer is an error after client_mount_timeout, not a hang.
TEST(RadosStoreTest, DeadClusterTimesOut) {
  std::string conf = testing::TempDir() + "/dead-" + std::to_string(getpid()) + ".conf";
  {
    std::ofstream f(conf);
    f << "[global]\nmon host = v2:127.0.0.1:1\nauth client required = none\nclient mount timeout = 2\n"
         "log file = /dev/null\n";
  }
  auto t0 = std::chrono::steady_clock::now();
  auto store = OpenStore("rados:" + Pool() + "?conf=" + conf);
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::remove(conf.c_str());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kTimedOut) << store.status().ToString();
  EXPECT_LT(secs, 20);
}

// ---- where objects go

TEST(RadosStoreTest, BlocksGoToTheDataPoolAndMetadataStays) {
  std::string ns;
  auto split = OpenTestStore(true, &ns);
  ASSERT_NE(split, nullptr);
  // Plain stores on each pool, same namespace, to see where things landed.
  auto meta_only = RadosStore::Open(Options(false, ns));
  RadosStoreOptions data_opts = Options(false, ns);
  data_opts.pool = DataPool();
  auto data_only = RadosStore::Open(data_opts);
  ASSERT_TRUE(meta_only.ok() && data_only.ok());

  const std::string block = "v.00ff.b.1.7", content = "c.abcdef", header = "v.00ff.header";
  ASSERT_TRUE(Write(*split, block, 0, "block data").ok());
  ASSERT_TRUE(split->Put(content, "content").ok());
  ASSERT_TRUE(split->Put(header, "header").ok());
  EXPECT_TRUE((*data_only)->Stat(block).ok());
  EXPECT_TRUE((*data_only)->Stat(content).ok());
  EXPECT_TRUE((*meta_only)->Stat(block).status().IsNotFound());
  EXPECT_TRUE((*meta_only)->Stat(header).ok());
  EXPECT_TRUE((*data_only)->Stat(header).status().IsNotFound());

  // Copy-up of a shared block stays in the data pool (OSD-side copy_from).
  ASSERT_TRUE(split->CopyBlocking(block, "v.00ff.b.2.7").ok());
  EXPECT_TRUE((*data_only)->Stat("v.00ff.b.2.7").ok());
  std::string out(10, '\0');
  ASSERT_TRUE(split->ReadBlocking("v.00ff.b.2.7", 0, std::span<char>(out.data(), out.size())).ok());
  EXPECT_EQ(out, "block data");

  // List merges both pools, sorted.
  EXPECT_EQ(*split->List("v.00ff."), (std::vector<std::string>{"v.00ff.b.1.7", "v.00ff.b.2.7", "v.00ff.header"}));
  EXPECT_EQ(*split->List(""), (std::vector<std::string>{"c.abcdef", "v.00ff.b.1.7", "v.00ff.b.2.7", "v.00ff.header"}));
}

TEST(RadosStoreTest, NamespacesSeparateStores) {
  auto a = OpenTestStore(false);
  auto b = OpenTestStore(false);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Put("same-name", "a").ok());
  EXPECT_TRUE(b->Get("same-name").status().IsNotFound());
  EXPECT_TRUE(b->List("")->empty());
}

// ---- the asynchronous data path

// Many reads and writes in flight from one thread: the calls return before they complete,
// and completions run on a handful of librados threads, not one per request.
TEST(RadosStoreTest, DataPathIsNativelyAsynchronous) {
  auto s = OpenTestStore(false);
  ASSERT_NE(s, nullptr);
  constexpr int kOps = 256;
  std::string data(4096, 'w');
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, errors = 0;
  std::set<std::thread::id> threads;
  auto finish = [&](bool ok) {
    std::lock_guard lock(mu);
    threads.insert(std::this_thread::get_id());
    if (!ok) errors++;
    if (++done == kOps) cv.notify_all();
  };
  for (int i = 0; i < kOps; i++) {
    s->Write("obj-" + std::to_string(i % 16), (i / 16) * 4096, std::span<const char>(data.data(), data.size()), false,
             [&](Status st) { finish(st.ok()); });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == kOps; }));
  }
  EXPECT_EQ(errors, 0);
  EXPECT_FALSE(threads.count(std::this_thread::get_id())) << "a completion ran inline on the caller";
  EXPECT_LE(threads.size(), 4u) << "completions should run on librados's few threads";
  std::printf("completions ran on %zu thread(s)\n", threads.size());

  std::vector<std::string> bufs(kOps, std::string(4096, '\0'));
  done = 0;
  for (int i = 0; i < kOps; i++) {
    s->Read("obj-" + std::to_string(i % 16), (i / 16) * 4096, std::span<char>(bufs[i].data(), 4096),
            [&, i](Result<size_t> n) { finish(n.ok() && *n == 4096 && bufs[i] == data); });
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == kOps; }));
  EXPECT_EQ(errors, 0);
}

// The last reference to a store may be dropped inside a completion.
TEST(RadosStoreTest, StoreMayBeReleasedFromACompletion) {
  auto s = OpenTestStore(false);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Put("x", "data").ok());
  std::promise<void> released;
  std::string buf(4, '\0');
  RadosStore* raw = s.get();
  raw->Read("x", 0, std::span<char>(buf.data(), buf.size()), [s = std::move(s), &released](Result<size_t>) mutable {
    s.reset();
    released.set_value();
  });
  released.get_future().wait();
  EXPECT_EQ(buf, "data");
}

TEST(RadosStoreTest, ZeroInsideTheObjectKeepsItsSize) {
  auto s = OpenTestStore(false);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(Write(*s, "z", 0, std::string(8192, 'x')).ok());
  ASSERT_TRUE(s->ZeroBlocking("z", 0, 8192).ok());  // the whole object: RADOS would truncate to 0
  EXPECT_EQ(s->Stat("z")->size, 8192u);
  ASSERT_TRUE(Write(*s, "z", 0, std::string(8192, 'x')).ok());
  ASSERT_TRUE(s->ZeroBlocking("z", 4096, 4096).ok());  // up to the exact end
  EXPECT_EQ(s->Stat("z")->size, 8192u);
  EXPECT_EQ(*s->Get("z"), std::string(4096, 'x') + std::string(4096, '\0'));
  ASSERT_TRUE(s->ZeroBlocking("z", 100, 0).ok());
  EXPECT_EQ(s->Stat("z")->size, 8192u);
}

TEST(RadosStoreTest, ZeroLengthReadNeedsTheObject) {
  auto s = OpenTestStore(false);
  ASSERT_NE(s, nullptr);
  std::string buf;
  EXPECT_TRUE(s->ReadBlocking("none", 0, std::span<char>(buf.data(), 0)).status().IsNotFound());
  ASSERT_TRUE(s->Put("some", "x").ok());
  auto n = s->ReadBlocking("some", 0, std::span<char>(buf.data(), 0));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
}

// ---- compare-and-swap: bytes past the end compare as zeros in cmpext; size must count

TEST(RadosStoreTest, CompareAndSwapSeesTrailingZerosAndLength) {
  auto s = OpenTestStore(false);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Create("short", "ab").ok());
  EXPECT_TRUE(s->CompareAndSwap("short", std::string("ab\0", 3), "x").IsConflict());
  EXPECT_TRUE(s->CompareAndSwap("short", "a", "x").IsConflict());
  EXPECT_EQ(*s->Get("short"), "ab");
  ASSERT_TRUE(s->Create("long", std::string("ab\0", 3)).ok());
  EXPECT_TRUE(s->CompareAndSwap("long", "ab", "x").IsConflict());
  EXPECT_TRUE(s->CompareAndSwap("long", "", "x").IsConflict());
  ASSERT_TRUE(s->CompareAndSwap("long", std::string("ab\0", 3), "").ok());
  EXPECT_TRUE(s->CompareAndSwap("long", "", "again").ok());
  EXPECT_EQ(*s->Get("long"), "again");
}

// ---- locks between two connections (two hosts, as far as RADOS can tell)

TEST(RadosStoreTest, LocksHoldAcrossClientConnections) {
  std::string ns;
  auto a = OpenTestStore(false, &ns);
  ASSERT_NE(a, nullptr);
  auto b = RadosStore::Open(Options(false, ns));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(a->Lock("v.1.lock", "host-a", 60000).ok());
  Status busy = (*b)->Lock("v.1.lock", "host-b", 60000);
  EXPECT_EQ(busy.code(), Code::kBusy);
  EXPECT_NE(busy.message().find("host-a"), std::string::npos) << busy.ToString();
  EXPECT_EQ((*b)->GetLock("v.1.lock")->owner, "host-a");
  EXPECT_EQ((*b)->Unlock("v.1.lock", "host-b").code(), Code::kBusy);
  // The same owner name through another connection (a restarted process) renews it...
  ASSERT_TRUE((*b)->Lock("v.1.lock", "host-a", 60000).ok());
  EXPECT_EQ(a->GetLock("v.1.lock")->owner, "host-a");
  EXPECT_EQ(a->Lock("v.1.lock", "host-c", 60000).code(), Code::kBusy);
  // ... and releases it.
  ASSERT_TRUE(a->Unlock("v.1.lock", "host-a").ok());
  EXPECT_TRUE((*b)->GetLock("v.1.lock").status().IsNotFound());
  ASSERT_TRUE((*b)->Lock("v.1.lock", "host-b", 60000).ok());
  // Deleting the lock object (volume removal) releases the lock with it.
  ASSERT_TRUE(a->Delete("v.1.lock").ok());
  EXPECT_TRUE(a->GetLock("v.1.lock").status().IsNotFound());
  ASSERT_TRUE(a->Lock("v.1.lock", "host-a", 60000).ok());
}

TEST(RadosStoreTest, ExpiredLeaseOfAnotherConnectionIsTakenOver) {
  std::string ns;
  auto a = OpenTestStore(false, &ns);
  ASSERT_NE(a, nullptr);
  auto b = RadosStore::Open(Options(false, ns));
  ASSERT_TRUE(b.ok());
  // A long lease while b checks (a loaded machine must not let it lapse in between), then a
  // renewal shortens it.
  ASSERT_TRUE(a->Lock("lk", "a", 60000).ok());
  EXPECT_EQ((*b)->Lock("lk", "b", 60000).code(), Code::kBusy);
  ASSERT_TRUE(a->Lock("lk", "a", 300).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ((*b)->GetLock("lk")->owner, "a");  // lapsed: reads as its last holder
  EXPECT_LT((*b)->GetLock("lk")->expires_unix_ms,
            std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch()).count());
  EXPECT_TRUE(a->Unlock("lk", "a").IsNotFound());
  ASSERT_TRUE((*b)->Lock("lk", "b", 60000).ok());
  EXPECT_EQ(a->Lock("lk", "a", 60000).code(), Code::kBusy);  // the old holder is fenced out
  EXPECT_EQ(a->GetLock("lk")->owner, "b");
}

// ---- breaking a lock with fencing: the old holder is blocklisted, as by `rbd lock break`

void ExpectFenced(const Status& st, const char* what) {
  EXPECT_EQ(st.code(), Code::kIOError) << what << ": " << st.ToString();
  EXPECT_NE(st.message().find("fenced (blocklisted) by another skerry"), std::string::npos)
      << what << ": " << st.ToString();
}

TEST(RadosStoreTest, BreakLockWithFenceCutsTheHolderOff) {
  std::string ns;
  auto b = OpenTestStore(false, &ns);  // the taker (its release empties the namespace)
  ASSERT_NE(b, nullptr);
  auto a = RadosStore::Open(Options(false, ns));  // the holder, a client of its own
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Lock("v.1.lock", "host-a", 60000).ok());
  ASSERT_TRUE(Write(**a, "v.1.b.0", 0, "a-1", true).ok());
  EXPECT_EQ(b->BreakLock("v.1.lock", "host-x", true).code(), Code::kBusy);  // not the holder: no fencing
  ASSERT_TRUE(Write(**a, "v.1.b.0", 0, "a-2", true).ok());

  ASSERT_TRUE(b->BreakLock("v.1.lock", "host-a", true).ok());
  ASSERT_TRUE(b->Lock("v.1.lock", "host-b", 60000).ok());
  // b first: its operations carry the OSD map that blocklists a, so the OSD has that map
  // before it sees anything a sends later.
  ASSERT_TRUE(Write(*b, "v.1.b.0", 0, "b-1", true).ok());
  ExpectFenced(Write(**a, "v.1.b.0", 0, "a-3", true), "a's write");
  ExpectFenced((*a)->Lock("v.1.lock", "host-a", 60000), "a's renewal");
  ExpectFenced((*a)->Put("v.1.header", "a"), "a's put");
  EXPECT_EQ(*b->Get("v.1.b.0"), "b-1");
  EXPECT_EQ(b->GetLock("v.1.lock")->owner, "host-b");
  ASSERT_TRUE(Write(*b, "v.1.b.0", 0, "b-2", true).ok());
  EXPECT_EQ(*b->Get("v.1.b.0"), "b-2");
}

TEST(RadosStoreTest, BreakLockWithFenceCutsOffTheHolderOfALapsedLease) {
  std::string ns;
  auto b = OpenTestStore(false, &ns);
  ASSERT_NE(b, nullptr);
  auto a = RadosStore::Open(Options(false, ns));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Lock("lk", "a", 300).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  // RADOS has dropped the lock; the lease record still names a, and a's client.
  EXPECT_EQ(b->GetLock("lk")->owner, "a");
  ASSERT_TRUE(b->BreakLock("lk", "a", true).ok());
  EXPECT_TRUE(b->GetLock("lk").status().IsNotFound());
  ASSERT_TRUE(Write(*b, "d", 0, "b", true).ok());
  ExpectFenced(Write(**a, "d", 0, "a", true), "a's write");
  ExpectFenced((*a)->Lock("lk", "a", 60000), "a's lock");
  EXPECT_EQ(*b->Get("d"), "b");
}

}  // namespace
}  // namespace skerry
