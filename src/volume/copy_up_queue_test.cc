#include "volume/copy_up_queue.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

namespace skerry::volume {
namespace {

// What the overlay's extents put in a block of `size` bytes that held `fill`.
std::string Apply(const HeldWriteOverlay& o, size_t size, char fill) {
  std::string block(size, fill);
  uint64_t last_end = 0;
  for (const HeldExtent& e : o.Extents()) {
    EXPECT_GE(e.off, last_end) << "extents overlap or are out of order";
    EXPECT_FALSE(e.data.empty());
    block.replace(e.off, e.data.size(), e.data);
    last_end = e.off + e.data.size();
  }
  return block;
}

TEST(HeldWriteOverlayTest, LaterWritesWinWhereTheyOverlap) {
  HeldWriteOverlay o;
  const std::string a(10, 'a'), b = "bb", c(6, 'c'), d = "d";
  o.Add(0, a);   // aaaaaaaaaa
  o.Add(4, b);   // aaaabbaaaa  (inside a: a splits in three)
  o.Add(8, c);   // aaaabbaacccccc (over a's tail and past it)
  o.Add(3, d);   // aaadbbaacccccc
  EXPECT_EQ(Apply(o, 16, '.'), "aaadbbaacccccc..");
  EXPECT_EQ(o.Extents().size(), 5u);  // a, d, b, a, c: adjacent pieces are not merged
  o.Add(0, std::string_view(a).substr(0, 9));  // over all of it but c's last five bytes
  EXPECT_EQ(Apply(o, 16, '.'), "aaaaaaaaaccccc..");
  EXPECT_EQ(o.Extents().size(), 2u);
}

// Against a byte-by-byte model, on random writes of random sizes (overlapping a lot).
TEST(HeldWriteOverlayTest, MatchesApplyingTheWritesInOrder) {
  std::mt19937_64 rng(20261122);
  for (int round = 0; round < 200; round++) {
    const size_t size = 1 + rng() % 4096;
    std::string model(size, '.');
    std::deque<std::string> writes;  // keeps the bytes the overlay points at
    HeldWriteOverlay o;
    int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; i++) {
      size_t off = rng() % size;
      size_t len = rng() % 3 == 0 ? 0 : 1 + rng() % (size - off);
      writes.emplace_back(len, static_cast<char>('A' + i % 26));
      o.Add(off, writes.back());
      model.replace(off, len, writes.back());
    }
    ASSERT_EQ(Apply(o, size, '.'), model) << "round " << round;
  }
}

}  // namespace
}  // namespace skerry::volume

// ------------------------------------------------------------ the queue's state machine
// A host that keeps "objects" in memory: the copy gives the target the source's bytes, held
// writes land on it, and Land records the map change. Steps fail while told to.
namespace skerry::volume {
namespace {

constexpr uint32_t kQBs = 64;

class MemHost final : public CopyUpHost {
 public:
  Status MayWrite(uint64_t) override { return lease_lost ? Status::IOError("lease lost") : Status::OK(); }
  Status CopyBlock(CopyUpJob& job) override {
    copies++;
    if (fail_copy) return Status::NoSpace("no space for the copy");
    objects[job.target] = std::string(kQBs, 's');
    job.release_source = true;
    return Status::OK();
  }
  Status WriteHeld(const CopyUpJob& job, const std::vector<HeldExtent>& extents) override {
    for (const HeldExtent& e : extents) objects[job.target].replace(e.off, e.data.size(), e.data);
    return Status::OK();
  }
  Status Land(const CopyUpJob& job) override {
    landed.push_back(job.block);
    released_source = job.release_source;
    return Status::OK();
  }

  bool lease_lost = false, fail_copy = false, released_source = false;
  int copies = 0;
  std::map<std::string, std::string> objects;
  std::vector<uint64_t> landed;
};

std::span<const char> Bytes(const std::string& s) { return std::span<const char>(s.data(), s.size()); }

TEST(CopyUpQueue, HeldWritesLandInOrderOnTheCopyThenTheMapChanges) {
  MemHost host;
  CopyUpQueue q(host, "v", kQBs, /*copier_threads=*/0, nullptr, 1 << 20);
  EXPECT_EQ(q.HoldIfPending(3, 0, Bytes("x")), CopyUpQueue::Hold::kNoCopyUp);
  ASSERT_TRUE(q.Start(3, Entry::Private(VolumeId{}, 1), "t", 4, Bytes("aaaa")));
  EXPECT_TRUE(q.any_pending());
  EXPECT_EQ(q.HoldIfPending(3, 6, Bytes("bb")), CopyUpQueue::Hold::kHeld);  // over the first
  EXPECT_EQ(host.copies, 0) << "on demand: nothing runs until asked";
  ASSERT_TRUE(q.Finish(3).ok());
  EXPECT_EQ(host.objects["t"].substr(0, 10), "ssssaabbss");
  EXPECT_EQ(host.landed, std::vector<uint64_t>{3});
  EXPECT_TRUE(host.released_source);
  EXPECT_FALSE(q.any_pending());
  EXPECT_TRUE(q.Finish(3).ok()) << "nothing pending: nothing to do";
}

TEST(CopyUpQueue, AFailedCopyKeepsItsWritesAndEveryFlushFailsUntilARetryLands) {
  MemHost host;
  CopyUpQueue q(host, "v", kQBs, 0, nullptr, 1 << 20);
  ASSERT_TRUE(q.Start(1, Entry::Private(VolumeId{}, 1), "t", 0, Bytes("held")));
  host.fail_copy = true;
  Status st = q.FinishStartedUpTo(q.last_started());
  EXPECT_EQ(st.code(), Code::kNoSpace);
  EXPECT_NE(st.message().find("deferred copy-up of block 1 (1 held writes)"), std::string::npos) << st.ToString();
  EXPECT_EQ(q.FinishStartedUpTo(q.last_started()).code(), Code::kNoSpace) << "the next flush fails too";
  EXPECT_TRUE(q.Has(1));
  host.fail_copy = false;
  EXPECT_TRUE(q.FinishStartedUpTo(q.last_started()).ok());
  EXPECT_EQ(host.objects["t"].substr(0, 4), "held");
  EXPECT_FALSE(q.Has(1));
}

TEST(CopyUpQueue, NothingIsWrittenOnceTheLeaseIsLost) {
  MemHost host;
  CopyUpQueue q(host, "v", kQBs, 0, nullptr, 1 << 20);
  ASSERT_TRUE(q.Start(1, Entry::Private(VolumeId{}, 1), "t", 0, Bytes("held")));
  host.lease_lost = true;
  EXPECT_EQ(q.Finish(1).code(), Code::kIOError);
  EXPECT_EQ(host.copies, 0);
  EXPECT_TRUE(host.landed.empty());
}

TEST(CopyUpQueue, BoundsOnHeldBytes) {
  MemHost host;
  auto process = std::make_shared<MemoryBudget>(10);
  CopyUpQueue q(host, "v", kQBs, 0, process, /*max_held_per_volume=*/8);
  const std::string six(6, 'x');
  ASSERT_TRUE(q.Start(1, Entry::Private(VolumeId{}, 1), "t1", 0, Bytes(six)));
  EXPECT_EQ(process->in_use(), 6u);
  EXPECT_EQ(q.HoldIfPending(1, 0, Bytes("abc")), CopyUpQueue::Hold::kFull) << "past the volume's 8 bytes";
  EXPECT_FALSE(q.Start(2, Entry::Private(VolumeId{}, 1), "t2", 0, Bytes("abc"))) << "nothing started past it";
  EXPECT_EQ(q.HoldIfPending(1, 0, Bytes("ab")), CopyUpQueue::Hold::kHeld);
  ASSERT_TRUE(q.Finish(1).ok());
  EXPECT_EQ(process->in_use(), 0u) << "the bytes go back once the copy-up landed";
  // A block holds at most its own size.
  const std::string block(kQBs, 'y');
  CopyUpQueue big(host, "w", kQBs, 0, nullptr, 1 << 20);
  ASSERT_TRUE(big.Start(1, Entry::Private(VolumeId{}, 1), "t3", 0, Bytes(block)));
  EXPECT_EQ(big.HoldIfPending(1, 0, Bytes("z")), CopyUpQueue::Hold::kFull);
}

TEST(CopyUpQueue, AClaimedCopyUpIsReplacedOrKeptForARetry) {
  MemHost host;
  CopyUpQueue q(host, "v", kQBs, 0, nullptr, 1 << 20);
  ASSERT_TRUE(q.Start(1, Entry::Private(VolumeId{}, 1), "t", 0, Bytes("held")));
  ASSERT_TRUE(q.Claim(1));
  q.EndClaim(1, /*replaced=*/false);  // the replacing write failed: the copy-up stays
  EXPECT_TRUE(q.Has(1));
  ASSERT_TRUE(q.Claim(1));
  q.EndClaim(1, /*replaced=*/true);
  EXPECT_FALSE(q.Has(1));
  EXPECT_EQ(host.copies, 0) << "a replaced copy-up is never copied";
  EXPECT_FALSE(q.Claim(1));
}

TEST(CopyUpQueue, RunQueuedPlaysTheCopierAndCopierThreadsDoItThemselves) {
  MemHost host;
  CopyUpQueue q(host, "v", kQBs, 0, nullptr, 1 << 20);
  for (uint64_t b = 0; b < 3; b++) ASSERT_TRUE(q.Start(b, Entry::Private(VolumeId{}, 1), "t" + std::to_string(b), 0, Bytes("h")));
  EXPECT_EQ(q.RunQueued(2), 2);
  EXPECT_EQ(host.landed, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(q.RunQueued(5), 1);

  MemHost threaded_host;
  {
    CopyUpQueue threaded(threaded_host, "v", kQBs, /*copier_threads=*/2, nullptr, 1 << 20);
    ASSERT_TRUE(threaded.Start(7, Entry::Private(VolumeId{}, 1), "t", 0, Bytes("h")));
    ASSERT_TRUE(threaded.FinishStartedUpTo(threaded.last_started()).ok());
  }
  EXPECT_EQ(threaded_host.landed, std::vector<uint64_t>{7});
}

}  // namespace
}  // namespace skerry::volume
