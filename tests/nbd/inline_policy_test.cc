// InlinePolicy alone, fed service times: whether a connection's reader runs small
// requests itself. The wiring into a real connection: transmission_test.cc.
#include "nbd/inline_policy.h"

#include <gtest/gtest.h>

namespace skerry::nbd {
namespace {

using Decision = InlinePolicy::Decision;
constexpr uint64_t kUs = 1000;

// Feeds `n` requests of `ns` each; returns how many of them the reader would run (at a
// high queue depth, where a request is never alone).
int Drive(InlinePolicy& p, int n, uint64_t ns) {
  int on_reader = 0;
  for (int i = 0; i < n; ++i) {
    on_reader += p.Decide() == Decision::kReader;
    p.Record(ns);
  }
  return on_reader;
}

TEST(InlinePolicy, AQuickVolumeIsServedByTheReader) {
  InlinePolicy p;
  EXPECT_EQ(Drive(p, 10000, 5 * kUs), 10000);
  // Just under a hand-off still is.
  EXPECT_EQ(Drive(p, 10000, 19 * kUs), 10000);
}

TEST(InlinePolicy, ASlowVolumeRunsOnTheReaderOnlyWhenARequestIsAlone) {
  InlinePolicy p;
  Drive(p, 100, 50 * kUs);
  EXPECT_EQ(p.Decide(), Decision::kReaderIfAlone);
  EXPECT_EQ(Drive(p, 1000, 50 * kUs), 0);
}

TEST(InlinePolicy, AVerySlowVolumeIsNeverRunOnTheReader) {
  // As RADOS: a request alone goes to a worker too. The reader learns within a few.
  InlinePolicy p;
  EXPECT_LE(Drive(p, 100, 500 * kUs), 1);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(p.Decide(), Decision::kWorker) << i;
    p.Record(500 * kUs);
  }
}

TEST(InlinePolicy, AVolumeThatBlocksForMillisecondsNowAndThenGoesToWorkers) {
  // One request in 20 blocks for 5 ms (a disk under load): 250 µs of the reader's time
  // per request on average, each block holding up the connection. Only the requests just
  // after a long quick spell may run on the reader.
  InlinePolicy p;
  int on_reader = 0;
  for (int i = 0; i < 10000; ++i) {
    on_reader += p.Decide() == Decision::kReader;
    p.Record(i % 20 == 19 ? 5000 * kUs : 5 * kUs);
  }
  EXPECT_LE(on_reader, 100);
}

TEST(InlinePolicy, TheThresholdCanBeRaised) {
  InlinePolicy p(/*quick_ns=*/2000 * kUs);
  EXPECT_EQ(Drive(p, 1000, 1000 * kUs), 1000);
  Drive(p, 100, 5000 * kUs);
  EXPECT_EQ(p.Decide(), Decision::kReaderIfAlone);  // under 5 x 2 ms
  Drive(p, 100, 20000 * kUs);
  EXPECT_EQ(p.Decide(), Decision::kWorker);
}

TEST(InlinePolicy, AVolumeThatTurnsSlowIsLeftToWorkersAndRetakenWhenQuick) {
  InlinePolicy p;
  EXPECT_EQ(Drive(p, 1000, 5 * kUs), 1000);
  // Cold reads: within a few requests the reader stops taking them.
  EXPECT_LE(Drive(p, 1000, 80 * kUs), 5);
  // Quick again: taken back within a few dozen.
  EXPECT_GE(Drive(p, 1000, 5 * kUs), 980);
}

}  // namespace
}  // namespace skerry::nbd
