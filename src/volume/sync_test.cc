#include "skerry/sync.h"

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

// Runs each hook once: right after the sync reads the source's directory, and right after
// it lists the whole source.
class ListHookStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::function<void()> after_directory, after_list;
  Result<std::vector<std::string>> List(std::string_view prefix) override {
    auto r = ForwardingStore::List(prefix);
    if (prefix.empty() && after_list) std::exchange(after_list, nullptr)();
    return r;
  }
  Result<std::string> Get(const std::string& name) override {
    auto r = ForwardingStore::Get(name);
    if (name == volume::kDirectoryObject && after_directory) std::exchange(after_directory, nullptr)();
    return r;
  }
};

struct SyncFixture {
  std::shared_ptr<ObjectStore> source = *OpenStore("mem:");
  std::shared_ptr<ObjectStore> target = *OpenStore("mem:");
  std::shared_ptr<ListHookStore> hooked = std::make_shared<ListHookStore>(source);
  std::unique_ptr<Catalog> cat = std::move(*Catalog::Open(source));
  std::vector<std::string> TargetVolumes() {
    auto c = Catalog::Open(target);
    auto volumes = (*c)->List();
    std::vector<std::string> names;
    for (auto& v : *volumes) names.push_back(v.name);
    return names;
  }
  bool TargetChecksClean() {
    auto r = CheckStore(*target, {});
    return r.ok() && r->ok();
  }
};

// Volumes made and removed on the source while a sync runs (create, clone and remove take no
// long-held lock, so the sync cannot refuse them): the target's directory never names a volume
// whose header it lacks.
TEST(SyncStoresTest, AVolumeCreatedDuringTheSyncIsLeftOut) {
  SyncFixture f;
  ASSERT_TRUE(f.cat->Create("a", 4 * kBs, kBs).ok());
  f.hooked->after_list = [&] { ASSERT_TRUE(f.cat->Create("late", 4 * kBs, kBs).ok()); };
  auto r = SyncStores(*f.hooked, *f.target, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(f.TargetVolumes(), std::vector<std::string>{"a"});
  EXPECT_TRUE(f.TargetChecksClean());
  // The next sync brings it.
  ASSERT_TRUE(SyncStores(*f.source, *f.target, {}).ok());
  EXPECT_EQ(f.TargetVolumes(), (std::vector<std::string>{"a", "late"}));
  EXPECT_TRUE(f.TargetChecksClean());
}

TEST(SyncStoresTest, AVolumeRemovedDuringTheSyncStopsItBeforeTheDirectory) {
  SyncFixture f;
  ASSERT_TRUE(f.cat->Create("a", 4 * kBs, kBs).ok());
  ASSERT_TRUE(SyncStores(*f.source, *f.target, {}).ok());
  ASSERT_TRUE(f.cat->Create("b", 4 * kBs, kBs).ok());
  ASSERT_TRUE(f.cat->Create("doomed", 4 * kBs, kBs).ok());
  // Removed after the directory was read, before the store is listed: its header is never
  // copied, but the directory read names it.
  f.hooked->after_directory = [&] { ASSERT_TRUE(f.cat->Remove("doomed").ok()); };
  auto r = SyncStores(*f.hooked, *f.target, {});
  EXPECT_EQ(r.status().code(), Code::kConflict) << r.status().ToString();
  EXPECT_EQ(f.TargetVolumes(), std::vector<std::string>{"a"}) << "the directory was replaced";
  EXPECT_TRUE(f.TargetChecksClean());
  ASSERT_TRUE(SyncStores(*f.source, *f.target, {}).ok());
  EXPECT_EQ(f.TargetVolumes(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(f.TargetChecksClean());
}

}  // namespace
}  // namespace skerry
