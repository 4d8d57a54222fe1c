// Cooperative opens (volume/handoff_volume.h): a standby serves reads without the lock, its
// first write takes the volume over from the writer, which flushes, releases and never writes
// again; an exclusive writer never hands over. Two catalogs on one store play two daemons.
#include "volume/handoff_volume.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "store/fault/forwarding_store.h"
#include "store/mem/mem_store.h"
#include "volume/format.h"
#include "volume/test_util.h"

namespace skerry::volume {
namespace {

constexpr uint32_t kBlock = 64 * 1024;

class HandoffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VolumeOptions o;
    o.handoff_poll_ms = 2;
    o.handoff_wait_ms = 2'000;
    o.lease_ms = 30'000;
    a_ = std::move(*Catalog::Open(mem_, o));
    b_ = std::move(*Catalog::Open(mem_, o));
    ASSERT_TRUE(a_->Create("vm", 16 * kBlock, kBlock).ok());
  }

  // A cooperative open by daemon `who`, its handoff lines kept in log_.
  std::unique_ptr<Volume> Open(Catalog& cat, const std::string& who, Handoff mode = Handoff::kCooperative) {
    OpenOptions o;
    o.owner = who;
    o.handoff = mode;
    o.on_handoff = [this](const std::string& line) {
      std::lock_guard lock(log_mu_);
      log_.push_back(line);
    };
    auto v = cat.Open("vm", o);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(*v) : nullptr;
  }
  std::string Log() {
    std::lock_guard lock(log_mu_);
    std::string all;
    for (auto& l : log_) all += l + "\n";
    return all;
  }
  std::string Holder() {
    auto h = a_->LockHolder("vm");
    return h.ok() ? h->owner : "(none: " + h.status().ToString() + ")";
  }

  std::shared_ptr<MemStore> mem_ = std::make_shared<MemStore>();
  std::unique_ptr<Catalog> a_, b_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

std::string ReadAt(Volume& v, uint64_t off, size_t n) {
  std::string out(n, '\0');
  Status st = v.Read(off, out);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

TEST_F(HandoffTest, AFreeVolumeOpensAsTheWriterAndCloseReleasesIt) {
  auto a = Open(*a_, "daemon-a");
  EXPECT_EQ(a->role(), VolumeRole::kWriter);
  EXPECT_EQ(Holder(), "daemon-a");
  ASSERT_TRUE(a->Write(0, testing::Pattern(4096, 1), false).ok());
  ASSERT_TRUE(a->Close().ok());
  EXPECT_TRUE(a_->LockHolder("vm").status().IsNotFound());
  auto again = Open(*b_, "daemon-b");
  EXPECT_EQ(ReadAt(*again, 0, 4096), testing::Pattern(4096, 1));
}

TEST_F(HandoffTest, AStandbyReadsWhatTheWriterFlushedWithoutTakingTheLock) {
  auto a = Open(*a_, "daemon-a");
  auto b = Open(*b_, "daemon-b");
  EXPECT_EQ(b->role(), VolumeRole::kStandby);
  EXPECT_EQ(b->size(), 16u * kBlock);
  ASSERT_TRUE(a->Write(kBlock, testing::Pattern(8192, 2), false).ok());
  ASSERT_TRUE(a->Flush().ok());
  EXPECT_EQ(ReadAt(*b, kBlock, 8192), testing::Pattern(8192, 2));
  // A standby's flush has nothing to make durable and must not pull the volume over.
  ASSERT_TRUE(b->Flush().ok());
  EXPECT_EQ(Holder(), "daemon-a");
  EXPECT_EQ(a->role(), VolumeRole::kWriter);
  EXPECT_NE(Log().find("opened as a standby"), std::string::npos) << Log();
}

TEST_F(HandoffTest, TheFirstWriteOnAStandbyTakesTheVolumeOverWithTheWritersUnflushedWrites) {
  auto a = Open(*a_, "daemon-a");
  auto b = Open(*b_, "daemon-b");
  // Acknowledged, never flushed by its client: the handover flushes it.
  ASSERT_TRUE(a->Write(0, testing::Pattern(kBlock, 3), false).ok());
  ASSERT_TRUE(a->WriteZeroes(3 * kBlock, kBlock, true, false).ok());
  ASSERT_TRUE(b->Write(2 * kBlock, testing::Pattern(4096, 4), false).ok()) << Log();
  EXPECT_EQ(b->role(), VolumeRole::kWriter);
  EXPECT_EQ(a->role(), VolumeRole::kHandedOver);
  EXPECT_EQ(Holder(), "daemon-b");
  EXPECT_EQ(ReadAt(*b, 0, kBlock), testing::Pattern(kBlock, 3));
  EXPECT_EQ(ReadAt(*b, 2 * kBlock, 4096), testing::Pattern(4096, 4));
  // The old writer: reads see the new one's flushed writes; writes fail for good; flush is fine.
  ASSERT_TRUE(b->Flush().ok());
  EXPECT_EQ(ReadAt(*a, 2 * kBlock, 4096), testing::Pattern(4096, 4));
  Status w = a->Write(0, testing::Pattern(4096, 5), false);
  EXPECT_TRUE((w.code() == Code::kIOError)) << w.ToString();
  EXPECT_NE(w.message().find("handed over to 'daemon-b'"), std::string::npos) << w.ToString();
  EXPECT_FALSE(a->Trim(0, kBlock).ok());
  EXPECT_TRUE(a->Flush().ok());
  EXPECT_EQ(ReadAt(*b, 0, 4096), testing::Pattern(4096, 3));
  // Closing the old writer leaves the new one's lock alone.
  ASSERT_TRUE(a->Close().ok());
  EXPECT_EQ(Holder(), "daemon-b");
  EXPECT_NE(Log().find("handed over to 'daemon-b'"), std::string::npos) << Log();
  EXPECT_NE(Log().find("took the write lock"), std::string::npos) << Log();
  // The request was withdrawn: a later writer is not asked again by it.
  EXPECT_EQ(*mem_->Get(HandoffObject(*VolumeId::FromHex(a_->Info("vm")->id))), "");
}

TEST_F(HandoffTest, ANewOpenTakesTheVolumeBackWhichIsAMigrationBack) {
  auto a1 = Open(*a_, "daemon-a");
  auto b = Open(*b_, "daemon-b");
  ASSERT_TRUE(b->Write(0, testing::Pattern(4096, 6), false).ok());
  ASSERT_TRUE(a1->Close().ok());  // the source QEMU quit
  auto a2 = Open(*a_, "daemon-a");
  EXPECT_EQ(a2->role(), VolumeRole::kStandby);
  ASSERT_TRUE(a2->Write(4096, testing::Pattern(4096, 7), true).ok()) << Log();
  EXPECT_EQ(b->role(), VolumeRole::kHandedOver);
  EXPECT_EQ(Holder(), "daemon-a");
  EXPECT_EQ(ReadAt(*a2, 0, 8192), testing::Pattern(4096, 6) + testing::Pattern(4096, 7));
}

TEST_F(HandoffTest, AnExclusiveWriterNeverHandsOverAndTheStandbysWriteFailsLoudly) {
  VolumeOptions o;
  o.handoff_poll_ms = 2;
  o.handoff_wait_ms = 150;
  auto b_short = std::move(*Catalog::Open(mem_, o));
  auto a = Open(*a_, "daemon-a", Handoff::kNever);
  auto b = Open(*b_short, "daemon-b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->role(), VolumeRole::kStandby);
  Status w = b->Write(0, testing::Pattern(4096, 8), false);
  EXPECT_TRUE((w.code() == Code::kIOError)) << w.ToString();
  EXPECT_NE(w.message().find("did not hand the volume over"), std::string::npos) << w.ToString();
  EXPECT_EQ(b->role(), VolumeRole::kStandby);
  EXPECT_EQ(Holder(), "daemon-a");
  ASSERT_TRUE(a->Write(0, testing::Pattern(4096, 9), true).ok());
  // The request it left was withdrawn.
  EXPECT_EQ(*mem_->Get(HandoffObject(*VolumeId::FromHex(a_->Info("vm")->id))), "");
}

TEST_F(HandoffTest, AWriterIgnoresARequestLeftOverFromARequesterThatGaveUp) {
  auto a = Open(*a_, "daemon-a");
  const auto id = *VolumeId::FromHex(a_->Info("vm")->id);
  ASSERT_TRUE(mem_->Put(HandoffObject(id), "daemon-b\n1000\n").ok());  // asked in 1970
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(a->role(), VolumeRole::kWriter);
  EXPECT_TRUE(a->Write(0, testing::Pattern(4096, 10), false).ok());
}

TEST_F(HandoffTest, ConcurrentWritesOnAStandbyTakeItOverOnceAndAllLand) {
  auto a = Open(*a_, "daemon-a");
  auto b = Open(*b_, "daemon-b");
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; i++) {
        uint64_t off = (static_cast<uint64_t>(t) * 4 + i) * 8192;
        if (!b->Write(off, testing::Pattern(8192, 100 + t * 4 + i), false).ok()) failed++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0) << Log();
  ASSERT_TRUE(b->Flush().ok());
  for (int n = 0; n < 32; n++) EXPECT_EQ(ReadAt(*b, n * 8192, 8192), testing::Pattern(8192, 100 + n)) << n;
  std::string log = Log();
  size_t first = log.find("took the write lock");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("took the write lock", first + 1), std::string::npos) << log;
}

TEST_F(HandoffTest, EveryWriteTheOldWriterAcknowledgedDuringTheHandoverIsThereAfterIt) {
  auto a = Open(*a_, "daemon-a");
  auto b = Open(*b_, "daemon-b");
  // Writers on a keep rewriting their own 4 KiB slots, each time with new content, until the
  // handover refuses them; what each slot last acknowledged must be there afterwards.
  constexpr int kThreads = 4, kSlots = 32, kMaxWrites = 20'000;
  std::vector<std::vector<int>> last(kThreads, std::vector<int>(kSlots, -1));
  std::vector<int> writes(kThreads, 0);
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kMaxWrites; n++) {
        int slot = n % kSlots;
        uint64_t off = static_cast<uint64_t>(t * kSlots + slot) * 4096;
        if (!a->Write(off, testing::Pattern(4096, 1'000'000 * (t + 1) + n), false).ok()) return;
        last[t][slot] = n;
        writes[t]++;
        if (n == 0) started++;
      }
    });
  }
  while (started.load() < kThreads) std::this_thread::sleep_for(std::chrono::microseconds(100));
  ASSERT_TRUE(b->Write(15 * kBlock, testing::Pattern(4096, 11), false).ok()) << Log();
  for (auto& t : threads) t.join();
  EXPECT_EQ(a->role(), VolumeRole::kHandedOver);
  for (int t = 0; t < kThreads; t++) {
    EXPECT_LT(writes[t], kMaxWrites) << "thread " << t << " was never refused";
    for (int slot = 0; slot < kSlots; slot++) {
      if (last[t][slot] < 0) continue;  // refused before it got there
      uint64_t off = static_cast<uint64_t>(t * kSlots + slot) * 4096;
      EXPECT_EQ(ReadAt(*b, off, 4096), testing::Pattern(4096, 1'000'000 * (t + 1) + last[t][slot]))
          << "thread " << t << " slot " << slot;
    }
  }
}

TEST_F(HandoffTest, OpensTakingTheVolumeFromEachOtherInTurnSeeEveryWriteOfTheOthers) {
  // Two opens take the volume from each other in turn while each checks what the other wrote:
  // the model is one block per turn, written by whoever has it then.
  auto a = Open(*a_, "daemon-a");
  ASSERT_TRUE(a->Write(0, testing::Pattern(4096, 0), true).ok());
  std::unique_ptr<Volume> current = std::move(a);
  for (int turn = 1; turn <= 12; turn++) {
    Catalog& cat = turn % 2 ? *b_ : *a_;
    auto next = Open(cat, turn % 2 ? "daemon-b" : "daemon-a");
    ASSERT_EQ(next->role(), VolumeRole::kStandby) << turn;
    ASSERT_TRUE(next->Write(turn * 4096, testing::Pattern(4096, turn), false).ok()) << turn << "\n" << Log();
    EXPECT_EQ(current->role(), VolumeRole::kHandedOver);
    EXPECT_FALSE(current->Write(0, testing::Pattern(16, 99), false).ok());
    ASSERT_TRUE(current->Close().ok());
    for (int k = 0; k <= turn; k++) EXPECT_EQ(ReadAt(*next, k * 4096, 4096), testing::Pattern(4096, k)) << k;
    current = std::move(next);
  }
  ASSERT_TRUE(current->Close().ok());
}

// Reads of handoff objects take a while (a store across the network); counts those under way.
class SlowHandoffReads final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::string> Get(const std::string& name) override {
    if (!name.ends_with(".handoff")) return ForwardingStore::Get(name);
    reads++;
    in_flight++;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto r = ForwardingStore::Get(name);
    in_flight--;
    return r;
  }
  std::atomic<int> reads{0}, in_flight{0};
};

// Close waits for a poll that is reading the request: that poll uses the open, and would
// otherwise go on after the open is gone.
TEST_F(HandoffTest, CloseWaitsForAPollReadingTheRequest) {
  auto slow = std::make_shared<SlowHandoffReads>(mem_);
  VolumeOptions o;
  o.handoff_poll_ms = 1;
  auto cat = std::move(*Catalog::Open(slow, o));
  for (int i = 0; i < 5; i++) {
    auto a = Open(*cat, "daemon-a");
    ASSERT_EQ(a->role(), VolumeRole::kWriter);
    while (slow->in_flight.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(a->Close().ok());
    EXPECT_EQ(slow->in_flight.load(), 0) << "Close returned while a poll was reading the request";
    const int at_close = slow->reads.load();
    a.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_EQ(slow->reads.load(), at_close) << "a poll ran after Close returned";
  }
}

}  // namespace
}  // namespace skerry::volume
