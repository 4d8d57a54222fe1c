// The write lock's lease in simulated time (volume/lease_keeper.h): renewal, lapse when the
// store cannot be reached, fencing once another owner holds the lock. One test proves the
// wiring on the real clock, briefly.
#include "volume/lease_keeper.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "store/fault/fault_store.h"
#include "store/fault/store_ops.h"
#include "store/mem/mem_store.h"
#include "util/sim_clock.h"
#include "volume/test_util.h"

namespace skerry::volume {
namespace {

constexpr int64_t kLease = 60'000;

struct Held {
  std::shared_ptr<MemStore> mem = std::make_shared<MemStore>();
  std::shared_ptr<FaultStore> faults;
  std::shared_ptr<SimClock> clock = std::make_shared<SimClock>();
  std::unique_ptr<LeaseKeeper> keeper;

  Held() {
    FaultRule lock;
    lock.error = FaultError::kETIMEDOUT;
    lock.ops = *ParseStoreOps("lock");
    faults = std::make_shared<FaultStore>(mem, std::vector<FaultRule>{lock});
    faults->set_enabled(false);
    EXPECT_TRUE(faults->Lock("l", "me", kLease).ok());
    keeper = std::make_unique<LeaseKeeper>(*faults, "l", "me", kLease, clock);
    keeper->Start();
  }
  int64_t StoredExpiry() { return faults->GetLock("l")->expires_unix_ms; }
};

TEST(LeaseKeeper, RenewsEveryThirdOfTheLeaseAndStaysValid) {
  Held h;
  EXPECT_TRUE(h.keeper->Check("v").ok());
  int64_t before = h.StoredExpiry();
  EXPECT_EQ(h.clock->Advance(kLease / 3 - 1), 0) << "no renewal before a third of the lease";
  EXPECT_EQ(h.clock->Advance(1), 1);
  EXPECT_GE(h.StoredExpiry(), before) << "the renewal wrote the lease again";
  // Ten leases later, renewed all along: still valid.
  EXPECT_EQ(h.clock->Advance(10 * kLease), 30);
  EXPECT_TRUE(h.keeper->Check("v").ok());
  EXPECT_FALSE(h.keeper->fenced());
}

TEST(LeaseKeeper, WritesAreRefusedOnceRenewalsFailPastTheLease) {
  Held h;
  h.faults->set_enabled(true);  // the store stops answering lock calls
  h.clock->Advance(kLease * 9 / 10 - 1);
  EXPECT_TRUE(h.keeper->Check("v").ok()) << "the lease taken at the start still holds, less its margin";
  h.clock->Advance(1);
  Status st = h.keeper->Check("v");
  EXPECT_EQ(st.code(), Code::kIOError);
  EXPECT_NE(st.message().find("could not be renewed in time"), std::string::npos) << st.ToString();
  EXPECT_FALSE(h.keeper->fenced()) << "nobody else took it: not fenced, only lapsed";
  // The store comes back: the next renewal makes the lease valid again.
  h.faults->set_enabled(false);
  h.clock->Advance(kLease / 3);
  EXPECT_TRUE(h.keeper->Check("v").ok());
}

TEST(LeaseKeeper, AnotherOwnerHoldingTheLockFencesForGood) {
  Held h;
  ASSERT_NO_FATAL_FAILURE(skerry::testing::TakeOverLock(*h.mem, "l", "other"));
  EXPECT_TRUE(h.keeper->Check("v").ok()) << "not known yet: the lease is still ours to use";
  h.clock->Advance(kLease / 3);  // the renewal finds "other"
  EXPECT_TRUE(h.keeper->fenced());
  Status st = h.keeper->Check("v");
  EXPECT_EQ(st.code(), Code::kIOError);
  EXPECT_NE(st.message().find("lost its write lock"), std::string::npos) << st.ToString();
  // Even once "other" released it, the fenced keeper never writes again.
  ASSERT_TRUE(h.mem->Unlock("l", "other").ok());
  h.clock->Advance(kLease);
  EXPECT_TRUE(h.keeper->fenced());
  EXPECT_EQ(h.mem->GetLock("l").status().code(), Code::kNotFound) << "a fenced keeper takes nothing back";
}

TEST(LeaseKeeper, NoRenewalAfterStop) {
  Held h;
  h.keeper->Stop();
  ASSERT_TRUE(h.mem->Unlock("l", "me").ok());
  EXPECT_EQ(h.clock->Advance(10 * kLease), 0);
  EXPECT_EQ(h.mem->GetLock("l").status().code(), Code::kNotFound);
}

// The wiring on the real clock: renewals happen without anybody advancing time.
TEST(LeaseKeeper, RenewsOnTheRealClock) {
  auto mem = std::make_shared<MemStore>();
  ASSERT_TRUE(mem->Lock("l", "me", 150).ok());
  int64_t first = mem->GetLock("l")->expires_unix_ms;
  LeaseKeeper keeper(*mem, "l", "me", 150, Clock::Real());
  keeper.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // two leases: renewed or lapsed
  EXPECT_TRUE(keeper.Check("v").ok());
  EXPECT_GT(mem->GetLock("l")->expires_unix_ms, first);
  keeper.Stop();
}

}  // namespace
}  // namespace skerry::volume
