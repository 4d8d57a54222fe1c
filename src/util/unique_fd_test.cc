// UniqueFd: closes what it owns exactly once, and ownership moves with it.
#include "util/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace skerry {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesWhenDestroyedAndWhenReset) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  {
    UniqueFd r(fds[0]);
    UniqueFd w(fds[1]);
    EXPECT_TRUE(r.valid());
    EXPECT_EQ(r.get(), fds[0]);
    w.Reset();
    EXPECT_FALSE(w.valid());
    EXPECT_FALSE(IsOpen(fds[1]));
    EXPECT_TRUE(IsOpen(fds[0]));
  }
  EXPECT_FALSE(IsOpen(fds[0]));
}

TEST(UniqueFd, MoveTransfersOwnershipAndReleaseGivesItUp) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  UniqueFd a(fds[0]);
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), fds[0]);
  UniqueFd c(fds[1]);
  c = std::move(b);  // closes fds[1], takes fds[0]
  EXPECT_FALSE(IsOpen(fds[1]));
  EXPECT_EQ(c.get(), fds[0]);
  int raw = c.Release();
  EXPECT_FALSE(c.valid());
  EXPECT_TRUE(IsOpen(raw));
  close(raw);
}

}  // namespace
}  // namespace skerry
