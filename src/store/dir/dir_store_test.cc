// DirStore behaviour beyond the store contract: the on-disk tree, reopening, refusing
// foreign directories, holes, and several stores (standing in for processes or hosts)
// sharing one directory.
#include "store/dir/dir_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "store/dir/file_ops.h"
#include "store/test_temp_dir.h"

namespace skerry {
namespace {

std::shared_ptr<DirStore> OpenOrDie(const std::string& root, DirStoreOptions options = {}) {
  auto store = DirStore::Open(root, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? *store : nullptr;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Bytes the file system allocated for a file.
uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

int OpenFdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n;
}

Status Write(ObjectStore& s, const std::string& name, uint64_t offset, std::string_view data) {
  return s.WriteSync(name, offset, std::span<const char>(data.data(), data.size()));
}

std::string Read(ObjectStore& s, const std::string& name, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  Result<size_t> got = s.ReadSync(name, offset, std::span<char>(out.data(), n));
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  return out;
}

// Adds 1 to the decimal number in "counter" `times` times with compare-and-swap;
// false on any error other than a lost race.
bool IncrementCounter(ObjectStore& s, int times) {
  for (int i = 0; i < times; i++) {
    for (;;) {
      Result<std::string> cur = s.Get("counter");
      if (!cur.ok()) return false;
      Status st = s.CompareAndSwap("counter", *cur, std::to_string(std::stoi(*cur) + 1));
      if (st.ok()) break;
      if (!st.IsConflict()) return false;
    }
  }
  return true;
}

TEST(DirStoreTest, CreatesTheTreeAndTheMarker) {
  TestTempDir tmp;
  const std::string root = tmp.path() + "/a/b/store";  // missing parents too
  auto store = OpenOrDie(root);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ReadFile(root + "/skerry-store"), "skerry dir store\nformat 1\n");
  EXPECT_TRUE(Exists(root + "/objects/00"));
  EXPECT_TRUE(Exists(root + "/objects/ff"));
  EXPECT_TRUE(Exists(root + "/tmp"));
  EXPECT_TRUE(Exists(root + "/locks/cas"));
  EXPECT_EQ(store->uri(), "dir:" + root);

  ASSERT_TRUE(store->Put("vol.meta", "m").ok());
  const std::string path = store->layout().ObjectPath("vol.meta");
  EXPECT_EQ(path.rfind(root + "/objects/", 0), 0u) << path;
  EXPECT_EQ(ReadFile(path), "m");
}

TEST(DirStoreTest, ObjectsSurviveReopening) {
  TestTempDir tmp;
  {
    auto store = OpenOrDie(tmp.path());
    ASSERT_TRUE(store->Put("meta", "v1").ok());
    ASSERT_TRUE(Write(*store, "block", 8192, "data").ok());
    ASSERT_TRUE(store->SyncSync({"block"}).ok());
    ASSERT_TRUE(store->Lock("lk", "me", 60000).ok());
  }
  auto store = OpenOrDie(tmp.path());
  EXPECT_EQ(*store->Get("meta"), "v1");
  EXPECT_EQ(Read(*store, "block", 8190, 6), std::string(2, '\0') + "data");
  EXPECT_EQ(store->GetLock("lk")->owner, "me");
  EXPECT_EQ(*store->List(""), (std::vector<std::string>{"block", "lk", "meta"}));
}

TEST(DirStoreTest, OpensAnExistingEmptyDirectory) {
  TestTempDir tmp;
  ASSERT_EQ(mkdir((tmp.path() + "/lost+found").c_str(), 0700), 0);  // a fresh file system's root
  EXPECT_NE(OpenOrDie(tmp.path() + "/"), nullptr);
  EXPECT_TRUE(Exists(tmp.path() + "/skerry-store"));
}

TEST(DirStoreTest, RefusesANonEmptyDirectoryThatIsNotAStore) {
  TestTempDir tmp;
  WriteFile(tmp.path() + "/precious.img", "not yours");
  auto store = DirStore::Open(tmp.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kInvalidArgument);
  EXPECT_NE(store.status().message().find("not a skerry store"), std::string::npos)
      << store.status().ToString();
  EXPECT_FALSE(Exists(tmp.path() + "/objects"));  // nothing was written there
  EXPECT_FALSE(Exists(tmp.path() + "/skerry-store"));
}

TEST(DirStoreTest, RefusesAFileAndANewerFormat) {
  TestTempDir tmp;
  WriteFile(tmp.path() + "/file", "x");
  EXPECT_EQ(DirStore::Open(tmp.path() + "/file").status().code(), Code::kInvalidArgument);

  ASSERT_EQ(mkdir((tmp.path() + "/future").c_str(), 0755), 0);
  WriteFile(tmp.path() + "/future/skerry-store", "skerry dir store\nformat 2\n");
  EXPECT_EQ(DirStore::Open(tmp.path() + "/future").status().code(), Code::kNotSupported);

  ASSERT_EQ(mkdir((tmp.path() + "/garbled").c_str(), 0755), 0);
  WriteFile(tmp.path() + "/garbled/skerry-store", "something else\n");
  EXPECT_EQ(DirStore::Open(tmp.path() + "/garbled").status().code(), Code::kCorruption);
}

TEST(DirStoreTest, TemporariesAndStrayFilesAreNotListed) {
  TestTempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store->Put("real", "x").ok());
  WriteFile(tmp.path() + "/tmp/12-abcdef-1", "half-written");
  WriteFile(tmp.path() + "/tmp/looks.like.an.object", "x");
  WriteFile(tmp.path() + "/objects/00/.nfs000000001", "x");  // NFS silly-rename leftover
  WriteFile(tmp.path() + "/objects/01/bad name", "x");
  EXPECT_EQ(*store->List(""), std::vector<std::string>{"real"});
  EXPECT_EQ(*store->List("looks"), std::vector<std::string>{});
  EXPECT_EQ(store->Put(".nfs1234", "x").code(), Code::kInvalidArgument);  // reserved here
}

TEST(DirStoreTest, StaleTemporariesAreRemovedAtOpen) {
  TestTempDir tmp;
  OpenOrDie(tmp.path());
  const std::string stale = tmp.path() + "/tmp/1-0000-7", fresh = tmp.path() + "/tmp/1-0000-8";
  WriteFile(stale, "crashed");
  WriteFile(fresh, "in progress elsewhere");
  struct timeval old[2] = {{time(nullptr) - 7200, 0}, {time(nullptr) - 7200, 0}};
  ASSERT_EQ(utimes(stale.c_str(), old), 0);
  OpenOrDie(tmp.path());
  EXPECT_FALSE(Exists(stale));
  EXPECT_TRUE(Exists(fresh));
}

TEST(DirStoreTest, CopyKeepsHolesAndLeavesNoTemporary) {
  TestTempDir tmp;
  auto store = OpenOrDie(tmp.path());
  // A 4 MiB block with 4 KiB of data in the middle.
  ASSERT_TRUE(Write(*store, "shared", 1 << 20, std::string(4096, 'd')).ok());
  ASSERT_TRUE(store->Truncate("shared", 4 << 20).ok());
  ASSERT_TRUE(store->CopySync("shared", "private").ok());
  const std::string dst = store->layout().ObjectPath("private");
  struct stat st;
  ASSERT_EQ(stat(dst.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4 << 20);
  EXPECT_LE(AllocatedBytes(dst), 64u * 1024) << "the holes were filled";
  EXPECT_EQ(Read(*store, "private", (1 << 20) - 1, 4098), std::string(1, '\0') + std::string(4096, 'd') + '\0');
  DIR* d = opendir((tmp.path() + "/tmp").c_str());
  int entries = 0;
  while (readdir(d) != nullptr) entries++;
  closedir(d);
  EXPECT_EQ(entries, 2);  // "." and ".."
  RecordProperty("cheap_copy", store->capabilities().cheap_copy ? "true" : "false");
}

TEST(DirStoreTest, ZeroReleasesSpace) {
  TestTempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_TRUE(Write(*store, "b", 0, std::string(1 << 20, 'x')).ok());
  ASSERT_TRUE(store->SyncSync({"b"}).ok());  // allocate for real (no delayed allocation)
  const std::string path = store->layout().ObjectPath("b");
  EXPECT_GE(AllocatedBytes(path), 1u << 20);
  ASSERT_TRUE(store->ZeroSync("b", 0, 1 << 20).ok());
  EXPECT_LE(AllocatedBytes(path), 64u * 1024);
  EXPECT_EQ(Read(*store, "b", 0, 1 << 20), std::string(1 << 20, '\0'));
}

TEST(DirStoreTest, CapabilitiesAreHonest) {
  TestTempDir tmp;
  auto store = OpenOrDie(tmp.path());
  StoreCapabilities caps = store->capabilities();
  EXPECT_TRUE(caps.server_side_copy);
  EXPECT_FALSE(caps.native_async);
  EXPECT_TRUE(caps.persistent);
  EXPECT_FALSE(caps.durable_writes);
  EXPECT_EQ(caps.cheap_copy, dirstore::ReflinkWorks(tmp.path() + "/tmp"));
}

TEST(DirStoreTest, TheFileCacheIsBounded) {
  TestTempDir tmp;
  DirStoreOptions options;
  options.max_open_files = 4;
  auto store = OpenOrDie(tmp.path(), options);
  const int before = OpenFdCount();
  for (int i = 0; i < 20; i++) {
    ASSERT_TRUE(Write(*store, "o" + std::to_string(i), 0, std::to_string(i)).ok());
  }
  for (int i = 0; i < 20; i++) {
    EXPECT_EQ(Read(*store, "o" + std::to_string(i), 0, 2), (std::to_string(i) + '\0').substr(0, 2));
  }
  EXPECT_LE(store->cached_files(), 4u);
  EXPECT_LE(OpenFdCount(), before + 4);
}

// Two stores on one directory stand in for two processes (their locks are separate
// open file descriptions, which exclude each other as other processes' would).
TEST(DirStoreTest, CompareAndSwapIsAtomicAcrossStoresSharingADirectory) {
  TestTempDir tmp;
  auto a = OpenOrDie(tmp.path()), b = OpenOrDie(tmp.path());
  ASSERT_TRUE(a->Create("counter", "0").ok());
  constexpr int kThreadsPerStore = 4, kIncrements = 20;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreadsPerStore; t++) {
    ObjectStore& s = t % 2 ? static_cast<ObjectStore&>(*a) : *b;
    threads.emplace_back([&s, &errors] {
      if (!IncrementCounter(s, kIncrements)) errors++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(*a->Get("counter"), std::to_string(2 * kThreadsPerStore * kIncrements));
}

TEST(DirStoreTest, CompareAndSwapIsAtomicAcrossProcesses) {
  TestTempDir tmp;
  auto store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store->Create("counter", "0").ok());
  constexpr int kChildren = 3, kIncrements = 30;
  std::vector<pid_t> children;
  for (int c = 0; c < kChildren; c++) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // a separate process with its own store on the same directory
      auto own = DirStore::Open(tmp.path());
      _exit(own.ok() && IncrementCounter(**own, kIncrements) ? 0 : 1);
    }
    children.push_back(pid);
  }
  EXPECT_TRUE(IncrementCounter(*store, kIncrements));
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(*store->Get("counter"), std::to_string((kChildren + 1) * kIncrements));
}

TEST(DirStoreTest, CreateHasOneWinnerAcrossStores) {
  TestTempDir tmp;
  auto a = OpenOrDie(tmp.path()), b = OpenOrDie(tmp.path());
  std::atomic<int> winners{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    ObjectStore& s = t % 2 ? static_cast<ObjectStore&>(*a) : *b;
    threads.emplace_back([&s, &winners, &errors, t] {
      Status st = s.Create("only-once", std::to_string(t));
      if (st.ok()) winners++;
      else if (!st.IsAlreadyExists()) errors++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(errors.load(), 0);
}

TEST(DirStoreTest, TakingALockDropsFilesCachedBeforeAnotherStoreReplacedThem) {
  TestTempDir tmp;
  auto here = OpenOrDie(tmp.path()), there = OpenOrDie(tmp.path());
  ASSERT_TRUE(Write(*here, "blk", 0, "old").ok());
  EXPECT_EQ(Read(*here, "blk", 0, 3), "old");  // now cached here
  ASSERT_TRUE(Write(*there, "base", 0, "new").ok());
  ASSERT_TRUE(there->CopySync("base", "blk").ok());  // replaces the file
  ASSERT_TRUE(here->Lock("vol.lock", "here", 60000).ok());
  EXPECT_EQ(Read(*here, "blk", 0, 3), "new");
}

}  // namespace
}  // namespace skerry
