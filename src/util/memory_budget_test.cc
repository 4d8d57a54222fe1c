// MemoryBudget: a bound on bytes held at once; Reserve serves waiters in arrival order,
// TryReserve never waits.
#include "util/memory_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace skerry {
namespace {

TEST(MemoryBudget, ReservesWhatFitsAndLetsAnOversizedRequestRunAlone) {
  MemoryBudget b(100);
  EXPECT_TRUE(b.TryReserve(60));
  EXPECT_FALSE(b.TryReserve(50));
  EXPECT_TRUE(b.TryReserve(40));
  EXPECT_EQ(b.in_use(), 100u);
  b.Release(100);
  EXPECT_TRUE(b.TryReserve(500));  // more than the limit, but nothing else holds any
  EXPECT_FALSE(b.TryReserve(1));
  b.Release(500);
  EXPECT_EQ(b.in_use(), 0u);
  EXPECT_EQ(b.peak(), 500u);
}

TEST(MemoryBudget, WaitersAreServedInOrderAndNobodyOvertakesThem) {
  MemoryBudget b(100);
  ASSERT_TRUE(b.TryReserve(100));
  std::vector<int> order;
  std::mutex mu;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&, i] {
      b.Reserve(60);
      std::lock_guard lock(mu);
      order.push_back(i);
    });
    // Each in line before the next starts.
    while (b.waits() < static_cast<uint64_t>(i + 1)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(b.TryReserve(1)) << "a newcomer overtook the waiters";
  for (int i = 0; i < 3; ++i) {
    b.Release(i == 0 ? 100 : 60);  // frees room for exactly the next one
    while (true) {
      std::lock_guard lock(mu);
      if (order.size() == static_cast<size_t>(i + 1)) break;
    }
  }
  for (auto& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(b.in_use(), 60u);
  EXPECT_LE(b.peak(), 100u);
}

// The held-bytes use: many threads that never wait, each doing without when the budget
// is spent. Together they never hold more than the limit.
TEST(MemoryBudget, TryReserveFromManyThreadsNeverExceedsTheLimit) {
  MemoryBudget b(1000);
  std::atomic<uint64_t> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        uint64_t n = 1 + (i * 7 + t * 13) % 300;
        if (!b.TryReserve(n)) {
          refused++;
          continue;
        }
        b.Release(n);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(b.peak(), 1000u);
  EXPECT_EQ(b.in_use(), 0u);
  EXPECT_EQ(b.waits(), 0u);  // TryReserve never waits
}

}  // namespace
}  // namespace skerry
