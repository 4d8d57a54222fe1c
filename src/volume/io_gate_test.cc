// IoGate: shared entries left on other threads, exclusive entries draining them and
// holding new ones out.
#include "volume/io_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace skerry::volume {
namespace {

using namespace std::chrono_literals;

TEST(IoGateTest, ExclusiveWaitsForASharedHolderThatLeavesOnAnotherThread) {
  IoGate gate;
  gate.EnterShared();  // this thread enters...
  std::atomic<bool> exclusive_in{false};
  std::thread exclusive([&] {
    ExclusiveGate g(gate);
    exclusive_in = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(exclusive_in.load());
  std::thread([&] { gate.LeaveShared(); }).join();  // ...another one leaves
  exclusive.join();
  EXPECT_TRUE(exclusive_in.load());
}

TEST(IoGateTest, NewSharedEntriesWaitWhileExclusiveIsHeld) {
  IoGate gate;
  gate.EnterExclusive();
  std::atomic<bool> shared_in{false};
  std::thread reader([&] {
    SharedGate g(gate);
    shared_in = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(shared_in.load());
  gate.LeaveExclusive();
  reader.join();
  EXPECT_TRUE(shared_in.load());
}

// Many shared holders entering on one thread and leaving on another, exclusive holders
// in between: an exclusive holder never has company, no one is lost, nothing hangs.
TEST(IoGateTest, ExclusiveHoldersAreAloneUnderLoad) {
  IoGate gate;
  std::atomic<int> shared_inside{0}, exclusive_inside{0}, violations{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&] {
      while (!stop) {
        gate.EnterShared();
        shared_inside++;
        if (exclusive_inside.load()) violations++;
        shared_inside--;
        std::thread([&] { gate.LeaveShared(); }).join();
      }
    });
  for (int i = 0; i < 200; i++) {
    ExclusiveGate g(gate);
    exclusive_inside++;
    if (shared_inside.load()) violations++;
    exclusive_inside--;
  }
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(violations.load(), 0);
}

}  // namespace
}  // namespace skerry::volume
