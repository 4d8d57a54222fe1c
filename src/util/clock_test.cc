#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "skerry/clock.h"
#include "util/sim_clock.h"

namespace skerry {
namespace {

TEST(SimClock, RunsDueTasksInOrderAtTheirTime) {
  SimClock clock(100);
  std::vector<std::pair<int, int64_t>> ran;
  clock.Schedule(30, [&] { ran.push_back({3, clock.NowMs()}); });
  clock.Schedule(10, [&] { ran.push_back({1, clock.NowMs()}); });
  clock.Schedule(10, [&] { ran.push_back({2, clock.NowMs()}); });  // same time: scheduling order
  EXPECT_EQ(clock.Advance(9), 0);
  EXPECT_EQ(clock.NowMs(), 109);
  EXPECT_EQ(clock.Advance(21), 3);
  ASSERT_EQ(ran.size(), 3u);
  EXPECT_EQ(ran[0], std::make_pair(1, int64_t{110}));
  EXPECT_EQ(ran[1], std::make_pair(2, int64_t{110}));
  EXPECT_EQ(ran[2], std::make_pair(3, int64_t{130}));
  EXPECT_EQ(clock.NowMs(), 130);
}

TEST(SimClock, ATaskThatSchedulesAgainRunsWithinTheSameAdvance) {
  SimClock clock(0);
  int runs = 0;
  std::function<void()> tick = [&] {
    runs++;
    clock.Schedule(10, tick);
  };
  clock.Schedule(10, tick);
  EXPECT_EQ(clock.Advance(55), 5);  // at 10, 20, 30, 40, 50
  EXPECT_EQ(runs, 5);
  EXPECT_EQ(clock.Advance(5), 1);  // at 60
}

TEST(SimClock, CancelledTaskNeverRuns) {
  SimClock clock(0);
  bool ran = false;
  Clock::TaskId id = clock.Schedule(10, [&] { ran = true; });
  EXPECT_NE(id, 0u);
  EXPECT_TRUE(clock.Cancel(id));
  EXPECT_FALSE(clock.Cancel(id));  // gone already
  clock.Advance(100);
  EXPECT_FALSE(ran);
}

TEST(SimClock, ATaskMayCancelItself) {
  SimClock clock(0);
  Clock::TaskId id = 0;
  bool cancelled = true;
  id = clock.Schedule(1, [&] { cancelled = clock.Cancel(id); });  // must not wait for itself
  clock.Advance(1);
  EXPECT_FALSE(cancelled);
}

// The wiring of the real clock: a task runs on its timer thread after its delay; Cancel takes
// one off before it runs, and waits for one that is running.
TEST(RealClock, RunsAfterTheDelayAndCancels) {
  auto clock = Clock::Real();
  std::atomic<int> ran{0};
  int64_t start = clock->NowMs();
  std::atomic<int64_t> at{0};
  clock->Schedule(20, [&] {
    at = clock->NowMs();
    ran++;
  });
  Clock::TaskId never = clock->Schedule(10'000, [&] { ran += 100; });
  for (int i = 0; i < 500 && ran.load() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(ran.load(), 1);
  EXPECT_GE(at.load() - start, 20);
  EXPECT_TRUE(clock->Cancel(never));

  std::atomic<bool> inside{false}, done{false};
  Clock::TaskId slow = clock->Schedule(0, [&] {
    inside = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    done = true;
  });
  while (!inside.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(clock->Cancel(slow));
  EXPECT_TRUE(done.load());  // Cancel returned only after the running task ended
}

}  // namespace
}  // namespace skerry
