// Space accounting: once no snapshot and not the head names an object of a volume, the
// volume deletes it. Every test ends with `skerry check`'s verdict: no problems and no
// unreferenced objects. The head's objects of an older epoch are the hard case: a snapshot
// froze them, the snapshot was removed, and then the head overwrites, trims, shrinks or
// rolls back over them.
#include <gtest/gtest.h>

#include <string>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

using testing::Pattern;

constexpr uint32_t kBs = 64 * 1024;

// Parameters: the store and the deferred copy-up mode (testing::StoreModeTest).
class SpaceTest : public testing::StoreModeTest {
 protected:
  // A volume of 4 blocks, all written at epoch 1, then snapshot "s" taken and removed: the
  // head now names objects of epoch 1 that nothing else names.
  std::string VolumeWithRemovedSnapshot(const std::string& name) {
    std::string data = Pattern(4 * kBs, 7);
    testing::CreateFilled(*cat_, name, data, kBs);
    EXPECT_TRUE(cat_->CreateSnapshot(name, "s").ok());
    EXPECT_TRUE(cat_->RemoveSnapshot(name, "s").ok());
    return data;
  }
};

TEST_P(SpaceTest, OverwritesAfterASnapshotRemovalFreeTheOldObjects) {
  std::string expect = VolumeWithRemovedSnapshot("d");
  {
    auto v = Open("d");
    WriteAt(*v, 100, "a partial write copies the block up");  // block 0
    expect.replace(100, 35, "a partial write copies the block up");
    std::string whole(kBs, 'w');
    WriteAt(*v, kBs, whole);  // block 1, replaced whole
    expect.replace(kBs, kBs, whole);
    ASSERT_TRUE(v->Trim(2 * kBs, kBs).ok());  // block 2 becomes a hole
    expect.replace(2 * kBs, kBs, std::string(kBs, '\0'));
    ASSERT_TRUE(v->WriteZeroes(3 * kBs, 512, /*may_trim=*/false, false).ok());  // block 3, zeroed in part
    expect.replace(3 * kBs, 512, std::string(512, '\0'));
    ASSERT_TRUE(v->Close().ok());
  }
  EXPECT_EQ(ReadSpec("d"), expect);
  ExpectCheckClean();
}

TEST_P(SpaceTest, ZeroingWholeBlocksAfterASnapshotRemovalFreesTheOldObjects) {
  std::string expect = VolumeWithRemovedSnapshot("d");
  {
    auto v = Open("d");
    ASSERT_TRUE(v->WriteZeroes(0, kBs, /*may_trim=*/false, false).ok());  // a new object of zeros
    ASSERT_TRUE(v->WriteZeroes(kBs, kBs, /*may_trim=*/true, false).ok());  // a hole
    expect.replace(0, 2 * kBs, std::string(2 * kBs, '\0'));
    ASSERT_TRUE(v->Close().ok());
  }
  EXPECT_EQ(ReadSpec("d"), expect);
  ExpectCheckClean();
}

TEST_P(SpaceTest, AShrinkAfterASnapshotRemovalFreesTheDroppedBlocks) {
  std::string expect = VolumeWithRemovedSnapshot("d");
  ASSERT_TRUE(cat_->Resize("d", kBs + 4096, /*allow_shrink=*/true).ok());
  EXPECT_EQ(ReadSpec("d"), expect.substr(0, kBs + 4096));
  ExpectCheckClean();
}

TEST_P(SpaceTest, ARollbackPastObjectsNoSnapshotNamesFreesThem) {
  std::string first = Pattern(4 * kBs, 1);
  testing::CreateFilled(*cat_, "d", first, kBs);
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s1").ok());
  if (auto v = Open("d")) WriteAt(*v, 0, std::string(2 * kBs, 'b'));  // epoch 2 objects
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s2").ok());
  ASSERT_TRUE(cat_->RemoveSnapshot("d", "s2").ok());  // the head alone names them now
  ASSERT_TRUE(cat_->Rollback("d", "s1").ok());
  EXPECT_EQ(ReadSpec("d"), first);
  ExpectCheckClean();
}

TEST_P(SpaceTest, ObjectsAnotherSnapshotNamesAreKept) {
  std::string first = Pattern(4 * kBs, 3);
  testing::CreateFilled(*cat_, "d", first, kBs);
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s1").ok());
  ASSERT_TRUE(cat_->CreateSnapshot("d", "s2").ok());  // names the same epoch-1 objects
  ASSERT_TRUE(cat_->RemoveSnapshot("d", "s1").ok());
  std::string head = first;
  {
    auto v = Open("d");
    WriteAt(*v, 10, "copy-up");
    WriteAt(*v, kBs, std::string(kBs, 'w'));
    ASSERT_TRUE(v->Trim(2 * kBs, 2 * kBs).ok());
    ASSERT_TRUE(v->Close().ok());
  }
  head.replace(10, 7, "copy-up");
  head.replace(kBs, kBs, std::string(kBs, 'w'));
  head.replace(2 * kBs, 2 * kBs, std::string(2 * kBs, '\0'));
  EXPECT_EQ(ReadSpec("d@s2"), first);
  EXPECT_EQ(ReadSpec("d"), head);
  ExpectCheckClean();
  ASSERT_TRUE(cat_->RemoveSnapshot("d", "s2").ok());
  EXPECT_EQ(ReadSpec("d"), head);
  ExpectCheckClean();
}

TEST_P(SpaceTest, AClonesWritesNeverFreeItsParentsObjects) {
  std::string image = Pattern(4 * kBs, 9);
  testing::CreateFilled(*cat_, "base", image, kBs);
  ASSERT_TRUE(cat_->CreateSnapshot("base", "gold").ok());
  ASSERT_TRUE(cat_->Clone("base", "gold", "vm").ok());
  {
    auto v = Open("vm");
    WriteAt(*v, 5, "x");
    WriteAt(*v, kBs, std::string(kBs, 'w'));
    ASSERT_TRUE(v->Trim(2 * kBs, kBs).ok());
    ASSERT_TRUE(v->Close().ok());
  }
  EXPECT_EQ(ReadSpec("base@gold"), image);
  ExpectCheckClean();
}

// Many snapshots come and go while the head keeps writing, as with nightly backups.
TEST_P(SpaceTest, SnapshotsThatComeAndGoLeaveNothingBehind) {
  ASSERT_TRUE(cat_->Create("d", 8 * kBs, kBs).ok());
  std::string expect(8 * kBs, '\0');
  for (int night = 0; night < 6; night++) {
    {
      auto v = Open("d");
      for (int i = 0; i < 5; i++) {
        uint64_t off = ((night * 5 + i) * 7919 % 8) * kBs + (night * 131 % 4096);
        std::string data = Pattern(3000, night * 10 + i);
        WriteAt(*v, off, data);
        expect.replace(off, data.size(), data);
      }
      if (night % 3 == 2) {
        ASSERT_TRUE(v->Trim(0, kBs).ok());
        expect.replace(0, kBs, std::string(kBs, '\0'));
      }
      ASSERT_TRUE(v->Close().ok());
    }
    std::string snap = "night" + std::to_string(night);
    ASSERT_TRUE(cat_->CreateSnapshot("d", snap).ok());
    if (night > 0) {
      ASSERT_TRUE(cat_->RemoveSnapshot("d", "night" + std::to_string(night - 1)).ok());
    }
    EXPECT_EQ(ReadSpec("d@" + snap), expect);
  }
  ASSERT_TRUE(cat_->RemoveSnapshot("d", "night5").ok());
  EXPECT_EQ(ReadSpec("d"), expect);
  ExpectCheckClean();
}

INSTANTIATE_TEST_SUITE_P(Stores, SpaceTest, testing::StoreModes(), testing::StoreModeName);

}  // namespace
}  // namespace skerry
