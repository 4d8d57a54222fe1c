// Runs the store contract against every store in this tree, and tests OpenStore.
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>

#include "skerry/object_store.h"
#include "store/dir/dir_store.h"
#include "store/mem/mem_store.h"
#include "store/store_contract.h"
#include "store/test_temp_dir.h"

namespace skerry {
namespace {

// A DirStore in a new temporary directory, removed when the store is released.
std::shared_ptr<ObjectStore> MakeTempDirStore() {
  auto dir = std::make_shared<TestTempDir>();
  Result<std::shared_ptr<DirStore>> store = DirStore::Open(dir->path() + "/store");
  if (!store.ok()) {
    ADD_FAILURE() << store.status().ToString();
    return nullptr;
  }
  std::shared_ptr<DirStore> s = *store;
  return std::shared_ptr<ObjectStore>(s.get(), [s, dir](ObjectStore*) mutable {
    s.reset();    // close the store first,
    dir.reset();  // then remove its directory
  });
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StoreContractTest,
    ::testing::Values(StoreContractParam{"mem", [] { return std::make_shared<MemStore>(); }},
                      StoreContractParam{"dir", MakeTempDirStore}),
    StoreContractName);

TEST(OpenStoreTest, MemMakesANewEmptyStoreEachTime) {
  auto a = OpenStore("mem:");
  auto b = OpenStore("mem:");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Put("x", "1").ok());
  EXPECT_TRUE((*b)->Get("x").status().IsNotFound());
  EXPECT_EQ((*a)->uri(), "mem:");
  EXPECT_FALSE((*a)->capabilities().persistent);
  EXPECT_TRUE((*a)->capabilities().server_side_copy);
  EXPECT_TRUE((*a)->capabilities().durable_writes);
  EXPECT_FALSE((*a)->capabilities().fences_lock_holders);  // BreakLock only breaks
}

TEST(OpenStoreTest, DirWithARelativePathIsMadeAbsolute) {
  TestTempDir tmp;
  char old_cwd[4096];
  ASSERT_NE(getcwd(old_cwd, sizeof old_cwd), nullptr);
  ASSERT_EQ(chdir(tmp.path().c_str()), 0);
  auto store = OpenStore("dir:rel/store");
  ASSERT_EQ(chdir(old_cwd), 0);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->uri(), "dir:" + tmp.path() + "/rel/store");
  EXPECT_TRUE((*store)->capabilities().persistent);
  EXPECT_FALSE((*store)->capabilities().native_async);
  EXPECT_FALSE((*store)->capabilities().fences_lock_holders);
  auto again = OpenStore((*store)->uri());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
}

TEST(OpenStoreTest, UnknownSchemesAreRefusedWithTheKnownOnes) {
  for (const char* uri : {"", "mem", "/srv/skerry", "dir:", "rados:"}) {
    auto store = OpenStore(uri);
    EXPECT_EQ(store.status().code(), Code::kInvalidArgument) << uri;
  }
  EXPECT_EQ(OpenStore("nfs:/x").status().message(), "unknown store URI 'nfs:/x': use dir:PATH, mem: or rados:POOL[?conf=PATH&...]");
}

}  // namespace
}  // namespace skerry
