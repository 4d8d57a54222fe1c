#include "util/unix_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace skerry {
namespace {

class RemoveStaleSocketTest : public ::testing::Test {
 protected:
  // Under /tmp, not $SKERRY_TEST_DIR or $TMPDIR: a socket path must fit in sun_path.
  void SetUp() override {
    char tmpl[] = "/tmp/unix_socket_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A socket bound at `path`, listening or not; the caller closes it.
  int Bound(const std::string& path, bool listening) {
    auto sun = UnixAddress(path);
    EXPECT_TRUE(sun.ok());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&*sun), sizeof(*sun)), 0);
    if (listening) {
      EXPECT_EQ(listen(fd, 1), 0);
    }
    return fd;
  }

  std::string dir_;
};

TEST_F(RemoveStaleSocketTest, NothingThereIsFine) {
  std::string path = dir_ + "/none.sock";
  EXPECT_TRUE(RemoveStaleSocket(path, *UnixAddress(path)).ok());
}

TEST_F(RemoveStaleSocketTest, ADeadSocketIsRemovedALiveOneIsNot) {
  std::string dead = dir_ + "/dead.sock", live = dir_ + "/live.sock";
  close(Bound(dead, false));
  int fd = Bound(live, true);
  EXPECT_TRUE(RemoveStaleSocket(dead, *UnixAddress(dead)).ok());
  EXPECT_NE(access(dead.c_str(), F_OK), 0);
  Status st = RemoveStaleSocket(live, *UnixAddress(live));
  EXPECT_TRUE(st.IsAlreadyExists()) << st.ToString();
  EXPECT_EQ(access(live.c_str(), F_OK), 0);
  close(fd);
}

// Someone else's file at the path, or a symlink (even a loop, on which stat() fails with
// ELOOP): refused, and left where it is.
TEST_F(RemoveStaleSocketTest, AnythingButASocketIsRefusedAndKept) {
  std::string file = dir_ + "/file", loop = dir_ + "/loop";
  std::ofstream(file) << "keep";
  ASSERT_EQ(symlink(loop.c_str(), loop.c_str()), 0);
  for (const std::string& path : {file, loop, dir_}) {
    Status st = RemoveStaleSocket(path, *UnixAddress(path));
    EXPECT_TRUE(st.IsAlreadyExists()) << path << ": " << st.ToString();
    EXPECT_NE(st.message().find("exists and is not a socket"), std::string::npos) << st.ToString();
    struct stat info;
    EXPECT_EQ(lstat(path.c_str(), &info), 0) << path;
  }
}

// A path that cannot be looked at is an error, not a go-ahead to bind.
TEST_F(RemoveStaleSocketTest, APathThatCannotBeLookedAtIsAnError) {
  std::string loop = dir_ + "/loop";
  ASSERT_EQ(symlink(loop.c_str(), loop.c_str()), 0);
  std::string path = loop + "/admin.sock";  // ELOOP on the way there
  Status st = RemoveStaleSocket(path, *UnixAddress(path));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(path), std::string::npos) << st.ToString();
}

TEST(UnixAddressTest, EmptyAndTooLongPathsAreRefused) {
  EXPECT_FALSE(UnixAddress("").ok());
  EXPECT_FALSE(UnixAddress(std::string(sizeof(sockaddr_un::sun_path), 'x')).ok());
  EXPECT_TRUE(UnixAddress(std::string(sizeof(sockaddr_un::sun_path) - 1, 'x')).ok());
}

}  // namespace
}  // namespace skerry
