// BusyPollWindow, SpinSlots and SpinUntilReadable alone. Their wiring into a real
// connection: transmission_test.cc ("Busy polling").
#include "nbd/busy_poll.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>

namespace skerry::nbd {
namespace {

constexpr uint64_t kUs = 1000;

TEST(BusyPollWindow, StaysClosedUntilAClientComesBackWithinTheMaximum) {
  BusyPollWindow w(50 * kUs);
  EXPECT_TRUE(w.enabled());
  EXPECT_EQ(w.window_ns(), 0u);
  for (int i = 0; i < 100; ++i) w.Record(5'000 * kUs);  // an idle client: never spin
  EXPECT_EQ(w.window_ns(), 0u);
  w.Record(30 * kUs);  // a spin of the maximum would have caught this one
  EXPECT_EQ(w.window_ns(), 50 * kUs);
}

TEST(BusyPollWindow, AWaitItCoveredKeepsItOpen) {
  BusyPollWindow w(50 * kUs);
  w.Record(10 * kUs);
  for (int i = 0; i < 1000; ++i) w.Record(i % 50 * kUs);
  EXPECT_EQ(w.window_ns(), 50 * kUs);
}

TEST(BusyPollWindow, AClientThatSlowsDownClosesItWithinAFewWaits) {
  BusyPollWindow w(50 * kUs);
  w.Record(10 * kUs);
  // Each long wait halves it: 25, 12.5, 6.25, 3.125 (= max/16), then closed.
  int waits = 0;
  while (w.window_ns() > 0) {
    w.Record(1'000 * kUs);
    ASSERT_LT(++waits, 10);
  }
  EXPECT_EQ(waits, 5);
  // What those spins cost at most: the window before each long wait.
  // 50 + 25 + 12.5 + 6.25 + 3.125 µs, under twice the maximum.
}

TEST(BusyPollWindow, OneLongWaitAmongShortOnesOnlyHalvesIt) {
  BusyPollWindow w(50 * kUs);
  w.Record(10 * kUs);
  w.Record(10'000 * kUs);
  EXPECT_EQ(w.window_ns(), 25 * kUs);
  w.Record(40 * kUs);  // not covered by 25 µs, within the maximum: open again
  EXPECT_EQ(w.window_ns(), 50 * kUs);
}

TEST(BusyPollWindow, AZeroMaximumNeverSpins) {
  BusyPollWindow w(0);
  EXPECT_FALSE(w.enabled());
  for (uint64_t ns : {uint64_t{0}, uint64_t{1}, 10 * kUs, 10'000 * kUs}) {
    w.Record(ns);
    EXPECT_EQ(w.window_ns(), 0u);
  }
}

TEST(SpinSlots, NoMoreSpinnersThanTheLimit) {
  SpinSlots slots(2);
  EXPECT_TRUE(slots.TryTake());
  EXPECT_TRUE(slots.TryTake());
  EXPECT_FALSE(slots.TryTake());
  slots.Give();
  EXPECT_TRUE(slots.TryTake());
  EXPECT_FALSE(slots.TryTake());
  SpinSlots none(0);
  EXPECT_FALSE(none.TryTake());
  cpu_set_t cpus;
  ASSERT_EQ(sched_getaffinity(0, sizeof cpus, &cpus), 0);
  EXPECT_EQ(SpinSlots::DefaultLimit(), static_cast<size_t>(CPU_COUNT(&cpus)) / 2);
}

TEST(SpinUntilReadable, ReturnsAtOnceForDataOrTheEndAndGivesUpAtTheDeadline) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(SpinUntilReadable(fds[0], 2'000 * kUs));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2));

  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  EXPECT_TRUE(SpinUntilReadable(fds[0], 10'000'000 * kUs));  // would be 10 000 s otherwise
  char c;
  EXPECT_EQ(::recv(fds[0], &c, 1, 0), 1) << "the spin must leave the byte for the reader";
  EXPECT_EQ(c, 'x');

  ::shutdown(fds[1], SHUT_WR);  // the client left
  EXPECT_TRUE(SpinUntilReadable(fds[0], 10'000'000 * kUs));
  ::close(fds[0]);
  ::close(fds[1]);
}

// A client that vanished with our reply unread resets the connection: the spin must leave
// that error for the reader's recv, which reports it (a peek would have taken it, and the
// reader would have seen a plain end of stream).
TEST(SpinUntilReadable, LeavesAResetForTheReader) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ASSERT_EQ(::write(fds[0], "reply", 5), 5);
  ::close(fds[1]);  // unread data: the server's side gets ECONNRESET
  EXPECT_TRUE(SpinUntilReadable(fds[0], 10'000'000 * kUs));
  char c;
  EXPECT_EQ(::recv(fds[0], &c, 1, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
  ::close(fds[0]);
}

}  // namespace
}  // namespace skerry::nbd
