#include "util/pipe.h"

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace skerry {
namespace {

int Queued(const ThreadPipe& p) {
  int n = -1;
  return ioctl(p.read_fd(), FIONREAD, &n) == 0 ? n : -1;
}

TEST(ThreadPipeTest, OnePipePerThreadSizedForAReply) {
  ThreadPipe* mine = ThreadPipe::Get();
  ASSERT_NE(mine, nullptr);
  EXPECT_EQ(ThreadPipe::Get(), mine);
  EXPECT_GE(mine->capacity(), 64u * 1024);
  ThreadPipe* other = nullptr;
  int other_fd = -1;
  std::thread([&] {
    other = ThreadPipe::Get();
    other_fd = other ? other->write_fd() : -1;
  }).join();
  EXPECT_NE(other, mine);
  EXPECT_NE(other_fd, mine->write_fd());
}

TEST(ThreadPipeTest, ZerosGoInWithoutCopiesAndAFullPipeIsAnError) {
  ThreadPipe* p = ThreadPipe::Get();
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(PutZerosInPipe(p->write_fd(), 100'000).ok());
  EXPECT_EQ(Queued(*p), 100'000);
  std::string out(100'000, 'x');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(p->read_fd(), out.data() + done, out.size() - done);
    ASSERT_GT(n, 0);
    done += static_cast<size_t>(n);
  }
  EXPECT_EQ(out, std::string(100'000, '\0'));
  // More than it holds: Busy instead of waiting for a reader that does not exist.
  Status st = PutZerosInPipe(p->write_fd(), p->capacity() + 4096);
  EXPECT_EQ(st.code(), Code::kBusy) << st.ToString();
  EXPECT_GT(Queued(*p), 0);
  ASSERT_TRUE(p->Reset());  // what was left is gone
  EXPECT_EQ(Queued(*p), 0);
  EXPECT_EQ(ThreadPipe::Get(), p);
}

}  // namespace
}  // namespace skerry
