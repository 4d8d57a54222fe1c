// MemoryBudget: the server-wide bound on bytes in flight, served in arrival order.
#include "util/memory_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace skerry {
namespace {

TEST(MemoryBudget, TakesWhatFitsAndLetsAnOversizedRequestRunAlone) {
  MemoryBudget b(100);
  EXPECT_TRUE(b.TryTake(60));
  EXPECT_FALSE(b.TryTake(50));
  EXPECT_TRUE(b.TryTake(40));
  EXPECT_EQ(b.in_use(), 100u);
  b.Give(100);
  EXPECT_TRUE(b.TryTake(500));  // more than the limit, but nothing else holds any
  EXPECT_FALSE(b.TryTake(1));
  b.Give(500);
  EXPECT_EQ(b.in_use(), 0u);
  EXPECT_EQ(b.peak(), 500u);
}

TEST(MemoryBudget, WaitersAreServedInOrderAndNobodyOvertakesThem) {
  MemoryBudget b(100);
  ASSERT_TRUE(b.TryTake(100));
  std::vector<int> order;
  std::mutex mu;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&, i] {
      b.Take(60);
      std::lock_guard lock(mu);
      order.push_back(i);
    });
    // Each in line before the next starts.
    while (b.waits() < static_cast<uint64_t>(i + 1)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(b.TryTake(1)) << "a newcomer overtook the waiters";
  for (int i = 0; i < 3; ++i) {
    b.Give(i == 0 ? 100 : 60);  // frees room for exactly the next one
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

}  // namespace
}  // namespace skerry
