#include "store/dir/fd_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace skerry::dirstore {
namespace {

// Opens /dev/null and counts how often it was asked to.
struct CountingOpener {
  int calls = 0;
  FdCache::Opener Fn() {
    return [this]() -> Result<UniqueFd> {
      calls++;
      return OpenFile("/dev/null", O_RDONLY);
    };
  }
};

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(DirStoreFdCacheTest, AHitReturnsTheCachedFile) {
  FdCache cache(4);
  CountingOpener opener;
  auto a = cache.Get("a", opener.Fn());
  auto b = cache.Get("a", opener.Fn());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->fd(), (*b)->fd());
  EXPECT_EQ(opener.calls, 1);
}

TEST(DirStoreFdCacheTest, EvictsTheLeastRecentlyUsed) {
  FdCache cache(2);
  CountingOpener opener;
  ASSERT_TRUE(cache.Get("a", opener.Fn()).ok());
  ASSERT_TRUE(cache.Get("b", opener.Fn()).ok());
  ASSERT_TRUE(cache.Get("a", opener.Fn()).ok());  // a is now the most recent
  ASSERT_TRUE(cache.Get("c", opener.Fn()).ok());  // evicts b
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.Peek("a"), nullptr);
  EXPECT_EQ(cache.Peek("b"), nullptr);
  EXPECT_NE(cache.Peek("c"), nullptr);
}

TEST(DirStoreFdCacheTest, AnEvictedFileStaysOpenWhileInUse) {
  FdCache cache(1);
  CountingOpener opener;
  FdCache::FileRef held = *cache.Get("a", opener.Fn());
  ASSERT_TRUE(cache.Get("b", opener.Fn()).ok());
  cache.Invalidate("a");
  EXPECT_TRUE(IsOpen(held->fd()));
  int fd = held->fd();
  held.reset();
  EXPECT_FALSE(IsOpen(fd));
}

TEST(DirStoreFdCacheTest, AFileOpenedAcrossAnInvalidationIsNotCached) {
  FdCache cache(4);
  auto file = cache.Get("x", [&]() {
    cache.Invalidate("x");  // the name is replaced while this lookup opens the old file
    return OpenFile("/dev/null", O_RDONLY);
  });
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(cache.Peek("x"), nullptr);
  CountingOpener opener;
  ASSERT_TRUE(cache.Get("x", opener.Fn()).ok());
  EXPECT_NE(cache.Peek("x"), nullptr);
}

TEST(DirStoreFdCacheTest, ErrorsAreReturnedAndNotCached) {
  FdCache cache(4);
  auto missing = cache.Get("m", [] { return OpenFile("/nonexistent/skerry", O_RDONLY); });
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DirStoreFdCacheTest, RunningOutOfDescriptorsClosesHalfAndRetries) {
  FdCache cache(8);
  CountingOpener opener;
  for (const char* n : {"a", "b", "c", "d"}) ASSERT_TRUE(cache.Get(n, opener.Fn()).ok());
  int attempts = 0;
  auto file = cache.Get("e", [&]() -> Result<UniqueFd> {
    if (attempts++ == 0) return Status::FromErrno(EMFILE, "open e");
    return OpenFile("/dev/null", O_RDONLY);
  });
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(cache.size(), 3u);  // two kept, plus e
  EXPECT_NE(cache.Peek("d"), nullptr);  // the most recent survive
  EXPECT_EQ(cache.Peek("a"), nullptr);
}

TEST(DirStoreFdCacheTest, ClearDropsEverything) {
  FdCache cache(4);
  CountingOpener opener;
  ASSERT_TRUE(cache.Get("a", opener.Fn()).ok());
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  ASSERT_TRUE(cache.Get("a", opener.Fn()).ok());
  EXPECT_EQ(opener.calls, 2);
}

}  // namespace
}  // namespace skerry::dirstore
