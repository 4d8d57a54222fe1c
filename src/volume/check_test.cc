#include "skerry/check.h"

#include <gtest/gtest.h>

#include <map>

#include "skerry/volume.h"
#include "store/fault/forwarding_store.h"
#include "volume/format.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

constexpr uint32_t kBs = 64 * 1024;

class CheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *OpenStore("mem:");
    cat_ = std::move(*Catalog::Open(store_));
    ASSERT_TRUE(cat_->Create("a", 4 * kBs, kBs).ok());
    auto v = std::move(*cat_->Open("a"));
    std::string data = testing::Pattern(2 * kBs, 1);
    ASSERT_TRUE(v->Write(0, std::span<const char>(data.data(), data.size())).ok());
    ASSERT_TRUE(v->Close().ok());
    ASSERT_TRUE(cat_->CreateSnapshot("a", "s").ok());
    ASSERT_TRUE(cat_->Clone("a", "s", "b").ok());
  }
  CheckReport Check(bool rehash = false) {
    auto r = CheckStore(*store_, CheckOptions{rehash});
    EXPECT_TRUE(r.ok());
    return *r;
  }
  std::string Find(const std::string& fragment) {
    auto all = store_->List("");
    for (auto& o : *all)
      if (o.find(fragment) != std::string::npos) return o;
    return "";
  }
  std::shared_ptr<ObjectStore> store_;
  std::unique_ptr<Catalog> cat_;
};

// Runs hooks once each: right after the check lists the whole store, and before the first
// Get of a name ending in a given suffix.
class HookStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::function<void()> after_list;
  std::map<std::string, std::function<void()>> before_get;
  Result<std::vector<std::string>> List(std::string_view prefix) override {
    auto r = ForwardingStore::List(prefix);
    if (prefix.empty() && after_list) std::exchange(after_list, nullptr)();
    return r;
  }
  Result<std::string> Get(const std::string& name) override {
    for (auto& [suffix, hook] : before_get)
      if (hook && name.ends_with(suffix)) std::exchange(hook, nullptr)();
    return ForwardingStore::Get(name);
  }
};

// A store in use changes while it is checked: new chunks and blocks named by a newer header,
// a volume and a snapshot removed between reading the directory and reading their header or
// record. None of that is corruption.
TEST_F(CheckTest, ChangesWhileCheckingAreNotReportedAsProblems) {
  ASSERT_TRUE(cat_->Create("gone", 4 * kBs, kBs).ok());
  ASSERT_TRUE(cat_->Create("c", 4 * kBs, kBs).ok());
  ASSERT_TRUE(cat_->CreateSnapshot("c", "old").ok());
  auto hooked = std::make_shared<HookStore>(store_);
  hooked->after_list = [&] {
    auto v = std::move(*cat_->Open("a"));
    std::string data = testing::Pattern(kBs, 7);
    ASSERT_TRUE(v->Write(3 * kBs, std::span<const char>(data.data(), data.size())).ok());
    ASSERT_TRUE(v->Close().ok());
  };
  hooked->before_get["v." + cat_->Info("gone")->id + ".header"] = [&] { ASSERT_TRUE(cat_->Remove("gone").ok()); };
  hooked->before_get["v." + cat_->Info("c")->id + ".snap.1"] = [&] { ASSERT_TRUE(cat_->RemoveSnapshot("c", "old").ok()); };
  auto r = CheckStore(*hooked, {});
  ASSERT_TRUE(r.ok());
  for (auto& p : r->problems) ADD_FAILURE() << p.object << " [" << p.volume << "]: " << p.problem;
  for (auto& [suffix, hook] : hooked->before_get) EXPECT_FALSE(hook) << suffix << " was never read";
  EXPECT_EQ(r->volumes, 3u);    // a, b, c
  EXPECT_EQ(r->snapshots, 1u);  // a@s
  EXPECT_TRUE(Check().ok());
}

TEST_F(CheckTest, CleanStoreHasNoProblemsAndNoLeftovers) {
  CheckReport r = Check();
  EXPECT_TRUE(r.ok()) << r.problems[0].object << ": " << r.problems[0].problem;
  EXPECT_EQ(r.volumes, 2u);
  EXPECT_EQ(r.snapshots, 1u);
  EXPECT_TRUE(r.unreferenced.empty()) << r.unreferenced[0];
}

TEST_F(CheckTest, FindsACorruptChunk) {
  std::string chunk = Find(".map.");
  std::string bytes = *store_->Get(chunk);
  bytes[60] ^= 1;
  ASSERT_TRUE(store_->Put(chunk, bytes).ok());
  CheckReport r = Check();
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].object, chunk);
  EXPECT_NE(r.problems[0].problem.find("checksum"), std::string::npos);
}

TEST_F(CheckTest, FindsAMissingBlockObjectAndNamesTheVolume) {
  std::string block = Find(".b.");
  ASSERT_TRUE(store_->Delete(block).ok());
  CheckReport r = Check();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problems[0].object, block);
  EXPECT_NE(r.problems[0].problem.find("missing"), std::string::npos);
}

TEST_F(CheckTest, ReportsLeftoversAsUnreferenced) {
  ASSERT_TRUE(store_->Put("v.00000000000000000000000000000001.header", "half-made").ok());
  CheckReport r = Check();
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.unreferenced.size(), 1u);
  EXPECT_EQ(r.unreferenced_bytes, 9u);
}

TEST_F(CheckTest, RehashCatchesContentThatDoesNotMatchItsName) {
  // Point block 3 of the head at a content-addressed object.
  std::string chunk_name;
  auto all = store_->List("");
  for (auto& o : *all)
    if (o.find(".map.2.") != std::string::npos || o.find(".map.1.") != std::string::npos) chunk_name = o;
  auto chunk = volume::DecodeChunk(*store_->Get(chunk_name), chunk_name);
  ASSERT_TRUE(chunk.ok());
  volume::Entry e;
  e.kind = volume::Entry::Kind::kContent;
  e.digest = Sha256("hello");
  chunk->entries[3] = e;
  ASSERT_TRUE(store_->Put(chunk_name, volume::EncodeChunk(*chunk)).ok());
  ASSERT_TRUE(store_->Put(volume::ContentObject(e.digest), "hello").ok());
  EXPECT_TRUE(Check(true).ok());
  ASSERT_TRUE(store_->Put(volume::ContentObject(e.digest), "jello").ok());
  EXPECT_TRUE(Check(false).ok()) << "without rehash the content is not read";
  CheckReport r = Check(true);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].problem.find("SHA-256"), std::string::npos);
}

}  // namespace
}  // namespace skerry
