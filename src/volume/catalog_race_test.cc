// Catalog operations of two processes at once: a clone made while its snapshot or its
// parent volume is removed. Whichever order the steps land in, either the clone or the
// removal fails, and the store stays consistent (no volume naming removed objects).
#include <gtest/gtest.h>

#include <functional>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "store/fault/forwarding_store.h"
#include "volume/format.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

constexpr uint32_t kBs = 64 * 1024;

// The cloning process's view of the store: runs a hook once before it creates a volume's
// header (clone step 2, before the name is published), or once after it has updated the
// directory (the name is published, the clone not yet confirmed).
class CloneHookStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::function<void()> before_header, after_directory;
  Status Create(const std::string& name, std::string_view data) override {
    if (before_header && name.ends_with(".header")) std::exchange(before_header, nullptr)();
    return ForwardingStore::Create(name, data);
  }
  Status CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) override {
    Status st = ForwardingStore::CompareAndSwap(name, expected, desired);
    if (st.ok() && after_directory && name == volume::kDirectoryObject) std::exchange(after_directory, nullptr)();
    return st;
  }
};

class CatalogRaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *OpenStore("mem:");
    hooked_ = std::make_shared<CloneHookStore>(store_);
    cloner_ = std::move(*Catalog::Open(hooked_));
    other_ = std::move(*Catalog::Open(store_));
    ASSERT_TRUE(other_->Create("p", 4 * kBs, kBs).ok());
    auto v = std::move(*other_->Open("p"));
    ASSERT_TRUE(v->Write(0, std::span<const char>(data_.data(), data_.size())).ok());
    ASSERT_TRUE(v->Close().ok());
    ASSERT_TRUE(other_->CreateSnapshot("p", "s").ok());
    // The head shares nothing with the snapshot any more: removing it frees the objects.
    std::string other = testing::Pattern(4 * kBs, 9);
    v = std::move(*other_->Open("p"));
    ASSERT_TRUE(v->Write(0, std::span<const char>(other.data(), other.size())).ok());
    ASSERT_TRUE(v->Close().ok());
  }
  void ExpectConsistent() {
    auto r = CheckStore(*store_, {});
    ASSERT_TRUE(r.ok());
    for (auto& p : r->problems) ADD_FAILURE() << p.object << " [" << p.volume << "]: " << p.problem;
  }
  std::string ReadClone() {
    OpenOptions ro;
    ro.read_only = true;
    auto v = other_->Open("c", ro);
    if (!v.ok()) return v.status().ToString();
    std::string out(data_.size(), 'x');
    Status st = (*v)->Read(0, std::span<char>(out.data(), out.size()));
    return st.ok() ? out : st.ToString();
  }
  std::shared_ptr<ObjectStore> store_;
  std::shared_ptr<CloneHookStore> hooked_;
  std::unique_ptr<Catalog> cloner_, other_;
  std::string data_ = testing::Pattern(4 * kBs, 1);
};

TEST_F(CatalogRaceTest, SnapshotRemovedBeforeTheCloneIsPublished) {
  Status removed;
  hooked_->before_header = [&] { removed = other_->RemoveSnapshot("p", "s"); };
  Status cloned = cloner_->Clone("p", "s", "c", std::nullopt);
  ASSERT_TRUE(removed.ok()) << removed.ToString();  // it did not see the clone yet
  EXPECT_EQ(cloned.code(), Code::kConflict) << cloned.ToString();
  EXPECT_EQ(other_->Info("c").status().code(), Code::kNotFound) << "the clone kept its name";
  ExpectConsistent();
}

TEST_F(CatalogRaceTest, SnapshotRemovalAfterTheCloneIsPublishedIsRefused) {
  Status removed;
  hooked_->after_directory = [&] { removed = other_->RemoveSnapshot("p", "s"); };
  ASSERT_TRUE(cloner_->Clone("p", "s", "c", std::nullopt).ok());
  EXPECT_EQ(removed.code(), Code::kBusy) << removed.ToString();
  EXPECT_EQ(ReadClone(), data_);
  ExpectConsistent();
}

TEST_F(CatalogRaceTest, ParentRemovedBeforeTheCloneIsPublished) {
  Status removed;
  hooked_->before_header = [&] { removed = other_->Remove("p"); };
  Status cloned = cloner_->Clone("p", "s", "c", std::nullopt);
  ASSERT_TRUE(removed.ok()) << removed.ToString();
  EXPECT_EQ(cloned.code(), Code::kConflict) << cloned.ToString();
  EXPECT_EQ(other_->Info("c").status().code(), Code::kNotFound);
  ExpectConsistent();
}

TEST_F(CatalogRaceTest, ParentRemovalAfterTheCloneIsPublishedIsRefused) {
  Status removed;
  hooked_->after_directory = [&] { removed = other_->Remove("p"); };
  ASSERT_TRUE(cloner_->Clone("p", "s", "c", std::nullopt).ok());
  EXPECT_EQ(removed.code(), Code::kBusy) << removed.ToString();
  EXPECT_EQ(ReadClone(), data_);
  ExpectConsistent();
}

}  // namespace
}  // namespace skerry
