// A store that reports an error after its update landed: the directory store renamed the new
// header or directory into place and then failed its directory fsync; a RADOS call timed out
// after the OSD applied it. Create, clone and snapshot must not clean up what is visible.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "store/fault/forwarding_store.h"
#include "volume/format.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

using testing::Pattern;

constexpr uint32_t kBs = 64 * 1024;

// Lets the next compare-and-swap of an object whose name ends with `suffix` land, then
// reports IOError; with `then_fail_gets`, reading such objects fails from then on too.
// `before` and `after` run just before and after the swap lands (another process acting).
class LandThenFailStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  void Arm(std::string suffix, bool then_fail_gets, std::function<void()> before = nullptr,
           std::function<void()> after = nullptr) {
    suffix_ = std::move(suffix);
    armed_ = true;
    then_fail_gets_ = then_fail_gets;
    before_ = std::move(before);
    after_ = std::move(after);
  }
  void Disarm() {
    armed_ = false;
    failing_gets_ = false;
  }
  Status CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) override {
    if (!armed_ || !name.ends_with(suffix_)) return ForwardingStore::CompareAndSwap(name, expected, desired);
    armed_ = false;
    if (before_) before_();
    Status st = ForwardingStore::CompareAndSwap(name, expected, desired);
    if (!st.ok()) return st;
    if (after_) after_();
    failing_gets_ = then_fail_gets_;
    return Status::IOError("injected: the update landed, then the store failed");
  }
  Result<std::string> Get(const std::string& name) override {
    if (failing_gets_ && name.ends_with(suffix_)) return Status::IOError("injected: read failed");
    return ForwardingStore::Get(name);
  }

 private:
  std::string suffix_;
  bool armed_ = false, then_fail_gets_ = false, failing_gets_ = false;
  std::function<void()> before_, after_;
};

class LandedErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mem_ = *OpenStore("mem:");
    store_ = std::make_shared<LandThenFailStore>(mem_);
    cat_ = std::move(*Catalog::Open(store_));
    other_ = std::move(*Catalog::Open(mem_));  // another process on the same store
  }
  std::string Read(const std::string& spec) { return testing::ReadWhole(*cat_, spec); }
  void ExpectNoProblems() {
    auto r = CheckStore(*mem_, {});
    ASSERT_TRUE(r.ok());
    for (auto& p : r->problems) ADD_FAILURE() << p.object << " [" << p.volume << "]: " << p.problem;
  }
  static void Write(Volume& v, uint64_t off, const std::string& data) {
    ASSERT_TRUE(v.Write(off, std::span<const char>(data.data(), data.size())).ok());
  }

  std::shared_ptr<ObjectStore> mem_;
  std::shared_ptr<LandThenFailStore> store_;
  std::unique_ptr<Catalog> cat_, other_;
};

TEST_F(LandedErrorTest, ASnapshotThatLandedIsKeptAndTheVolumeMovesOn) {
  ASSERT_TRUE(cat_->Create("d", 2 * kBs, kBs).ok());
  std::string before = Pattern(2 * kBs, 1);
  auto v = std::move(*cat_->Open("d"));
  Write(*v, 0, before);
  ASSERT_TRUE(v->Flush().ok());  // the snapshot's own header update is the one that fails
  store_->Arm(".header", false);
  Status st = v->CreateSnapshot("s");
  EXPECT_EQ(st.code(), Code::kIOError);
  EXPECT_NE(st.message().find("snapshot 'd@s' was taken, but the store reported an error"), std::string::npos)
      << st.ToString();
  // The snapshot is there, and writes after it no longer reach its objects.
  std::string after = std::string(100, 'a') + before.substr(100);
  Write(*v, 0, after.substr(0, 100));
  ASSERT_TRUE(v->Close().ok());
  EXPECT_TRUE(Read("d@s") == before) << "d@s";
  EXPECT_TRUE(Read("d") == after) << "d";
  ExpectNoProblems();
}

TEST_F(LandedErrorTest, ASnapshotOfUnknownOutcomeStopsWritesUntilReopened) {
  ASSERT_TRUE(cat_->Create("d", 2 * kBs, kBs).ok());
  std::string before = Pattern(2 * kBs, 2);
  auto v = std::move(*cat_->Open("d"));
  Write(*v, 0, before);
  ASSERT_TRUE(v->Flush().ok());
  store_->Arm(".header", /*then_fail_gets=*/true);
  Status st = v->CreateSnapshot("s");
  EXPECT_NE(st.message().find("may have been taken"), std::string::npos) << st.ToString();
  std::string x(10, 'x');
  EXPECT_EQ(v->Write(0, std::span<const char>(x.data(), x.size())).code(), Code::kIOError);
  EXPECT_EQ(v->Flush().code(), Code::kIOError);
  EXPECT_FALSE(v->Close().ok());  // its flush is refused, but it lets the lock go
  store_->Disarm();
  EXPECT_TRUE(Read("d@s") == before) << "d@s";
  EXPECT_TRUE(Read("d") == before) << "d";
  auto again = cat_->Open("d");  // the lock was released
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Write(**again, 0, x);
  ASSERT_TRUE((*again)->Close().ok());
  EXPECT_TRUE(Read("d@s") == before) << "d@s";
  ExpectNoProblems();
}

TEST_F(LandedErrorTest, AVolumeWhoseNameLandedKeepsItsHeader) {
  ASSERT_TRUE(cat_->Create("first", kBs, kBs).ok());  // the directory exists: updates swap it
  store_->Arm("skerry.directory", false);
  Status st = cat_->Create("d", 2 * kBs, kBs);
  EXPECT_EQ(st.code(), Code::kIOError);
  EXPECT_NE(st.message().find("volume 'd' was created, but the store reported an error"), std::string::npos)
      << st.ToString();
  EXPECT_TRUE(Read("d") == std::string(2 * kBs, '\0')) << "d";
  ExpectNoProblems();
}

TEST_F(LandedErrorTest, ACloneWhoseNameLandedStaysAChildOfItsSnapshot) {
  ASSERT_TRUE(cat_->Create("p", 2 * kBs, kBs).ok());
  std::string image = Pattern(2 * kBs, 3);
  {
    auto v = std::move(*cat_->Open("p"));
    Write(*v, 0, image);
    ASSERT_TRUE(v->Close().ok());
  }
  ASSERT_TRUE(cat_->CreateSnapshot("p", "s").ok());
  store_->Arm("skerry.directory", false);
  Status st = cat_->Clone("p", "s", "c");
  EXPECT_EQ(st.code(), Code::kIOError) << st.ToString();
  EXPECT_TRUE(Read("c") == image) << "c";
  // The snapshot still knows its clone: removing it is refused.
  EXPECT_EQ(cat_->RemoveSnapshot("p", "s").code(), Code::kBusy);
  EXPECT_TRUE(Read("c") == image) << "c";
  ExpectNoProblems();
}

// A clone whose name landed with an error still confirms that its snapshot has it (step 4):
// a removal that looked for live clones before the name landed went ahead, and the clone
// must then take its name back rather than stay, naming the removed snapshot's objects.
TEST_F(LandedErrorTest, ACloneWhoseNameLandedIsStillConfirmedAgainstARacingSnapRemove) {
  ASSERT_TRUE(cat_->Create("p", 2 * kBs, kBs).ok());
  {
    auto v = std::move(*cat_->Open("p"));
    std::string a = Pattern(2 * kBs, 7);
    ASSERT_TRUE(v->Write(0, std::span<const char>(a.data(), a.size())).ok());
    ASSERT_TRUE(v->CreateSnapshot("s").ok());
    std::string b = Pattern(2 * kBs, 8);  // the head stops sharing the snapshot's blocks
    ASSERT_TRUE(v->Write(0, std::span<const char>(b.data(), b.size())).ok());
    ASSERT_TRUE(v->Close().ok());
  }
  Status removed;
  store_->Arm("skerry.directory", false, [&] { removed = other_->RemoveSnapshot("p", "s"); });
  Status st = cat_->Clone("p", "s", "c");
  EXPECT_FALSE(st.ok());
  ASSERT_TRUE(removed.ok()) << removed.ToString();  // the removal did not see the clone yet
  auto info = cat_->Info("c");
  EXPECT_FALSE(info.ok()) << "clone 'c' is in the directory although its snapshot was removed";
  ExpectNoProblems();
}

// Whether the name landed is looked up by id: the volume may be renamed right after.
TEST_F(LandedErrorTest, AVolumeRenamedRightAfterItsNameLandedKeepsItsHeader) {
  ASSERT_TRUE(cat_->Create("first", kBs, kBs).ok());
  Status renamed;
  store_->Arm("skerry.directory", false, nullptr, [&] { renamed = other_->Rename("d", "e"); });
  Status st = cat_->Create("d", 2 * kBs, kBs);
  EXPECT_FALSE(st.ok());
  ASSERT_TRUE(renamed.ok()) << renamed.ToString();
  auto info = cat_->Info("e");
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  ExpectNoProblems();
}

// A record the header names is never deleted, even when the header is not as the snapshot
// left it (here a snapshot of its id under another name): the volume stops writing instead.
TEST_F(LandedErrorTest, ARecordTheHeaderNamesIsNeverDeleted) {
  ASSERT_TRUE(cat_->Create("d", 2 * kBs, kBs).ok());
  auto v = std::move(*cat_->Open("d"));
  std::string a = Pattern(2 * kBs, 9);
  ASSERT_TRUE(v->Write(0, std::span<const char>(a.data(), a.size())).ok());
  ASSERT_TRUE(v->Flush().ok());
  std::string header = "v." + v->volume_id() + ".header";
  // Stand-in for a header changed between the swap and the read (a second writer after a
  // lapsed lease, a future snapshot rename): the snapshot of this id is there, named "t".
  store_->Arm(".header", false, nullptr, [&] {
    auto h = volume::DecodeHeader(*mem_->Get(header), header);
    ASSERT_TRUE(h.ok());
    for (auto& e : h->snapshots) if (e.name == "s") e.name = "t";
    ASSERT_TRUE(mem_->Put(header, volume::EncodeHeader(*h)).ok());
  });
  Status st = v->CreateSnapshot("s");
  EXPECT_FALSE(st.ok());
  (void)v->Close();
  ExpectNoProblems();
}

}  // namespace
}  // namespace skerry
