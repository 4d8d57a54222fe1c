// GcGuard (volume/gc_guard.h): a deduplicating writer's hold and a collection's gc.running
// keep each other out, whichever starts first; released or lapsed ones do not.
#include "volume/gc_guard.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "store/mem/mem_store.h"

namespace skerry::volume {
namespace {

constexpr int64_t kLease = 30'000;

TEST(GcGuard, AHoldKeepsACollectionFromStarting) {
  MemStore store;
  auto hold = GcHold::Acquire(store, "importer", kLease, Clock::Real(), 0);
  ASSERT_TRUE(hold.ok()) << hold.status().ToString();
  auto gc = GcRunning::Start(store, "gc", kLease, Clock::Real());
  ASSERT_EQ(gc.status().code(), Code::kBusy) << gc.status().ToString();
  EXPECT_NE(gc.status().message().find("importer"), std::string::npos);
  // Its failed start left nothing behind: after the hold, a collection starts.
  ASSERT_TRUE((*hold)->Release().ok());
  auto again = GcRunning::Start(store, "gc", kLease, Clock::Real());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE((*again)->Check().ok());
}

TEST(GcGuard, ARunningCollectionMakesAHoldWaitAndAnotherCollectionFail) {
  MemStore store;
  auto gc = GcRunning::Start(store, "gc", kLease, Clock::Real());
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(GcRunning::Start(store, "gc2", kLease, Clock::Real()).status().code(), Code::kBusy);
  auto refused = GcHold::Acquire(store, "importer", kLease, Clock::Real(), 0);
  ASSERT_EQ(refused.status().code(), Code::kBusy) << refused.status().ToString();
  // The hold it took while looking was released: the collection is not held off by it.
  EXPECT_TRUE(LiveGcHolds(store)->empty());
  std::thread finish([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_TRUE((*gc)->Finish().ok());
  });
  auto waited = GcHold::Acquire(store, "importer", kLease, Clock::Real(), 5'000);
  finish.join();
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_TRUE((*waited)->Check().ok());
  EXPECT_EQ(*LiveGcHolds(store), std::vector<std::string>{"importer"});
}

TEST(GcGuard, ReleasedAndLapsedHoldsDoNotHoldOffACollection) {
  MemStore store;
  auto hold = GcHold::Acquire(store, "importer", 200, Clock::Real(), 0);
  ASSERT_TRUE(hold.ok());
  // Its renewals stop as a paused writer's would.
  EXPECT_TRUE(store.Put(std::string(kGcHoldPrefix) + "x", "").ok());  // an empty (released) one
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE((*hold)->Check().ok());
  // A second writer's hold lapsing: a collection proceeds past it.
  ASSERT_TRUE(store.Lock(std::string(kGcHoldPrefix) + "y", "paused", 1).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(*LiveGcHolds(store), std::vector<std::string>{"importer"});
  ASSERT_TRUE((*hold)->Release().ok());
  auto gc = GcRunning::Start(store, "gc", kLease, Clock::Real());
  EXPECT_TRUE(gc.ok()) << gc.status().ToString();
}

TEST(GcGuard, TwoStartingTogetherNeverBothProceed) {
  for (int round = 0; round < 50; round++) {
    MemStore store;
    std::unique_ptr<GcHold> hold;
    std::unique_ptr<GcRunning> gc;
    std::thread a([&] {
      auto h = GcHold::Acquire(store, "importer", kLease, Clock::Real(), 0);
      if (h.ok()) hold = std::move(*h);
    });
    std::thread b([&] {
      auto g = GcRunning::Start(store, "gc", kLease, Clock::Real());
      if (g.ok()) gc = std::move(*g);
    });
    a.join();
    b.join();
    EXPECT_FALSE(hold && gc) << "round " << round << ": a hold and a collection at once";
  }
}

}  // namespace
}  // namespace skerry::volume
