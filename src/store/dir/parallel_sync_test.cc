// ParallelSync: every target synced once, lazily opened and bounded, the lowest-numbered
// error reported, issuing stopped after a failure, and threads when io_uring is refused.
#include "store/dir/parallel_sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "store/test_temp_dir.h"

namespace skerry::dirstore {
namespace {

using Engine = ParallelSync::Engine;

struct EngineCase {
  const char* name;
  unsigned parallelism;
  Engine engine;
};

const EngineCase kEngines[] = {
    {"serial", 1, Engine::kUring},
    {"uring", 8, Engine::kUring},
    {"threads", 8, Engine::kThreads},
};

// Files with a little dirty data each, and an opener that counts what it hands out.
class Targets {
 public:
  Targets(const std::string& dir, size_t count) {
    for (size_t i = 0; i < count; i++) {
      paths_.push_back(dir + "/f" + std::to_string(i));
      auto fd = OpenFile(paths_.back(), O_RDWR | O_CREAT, 0644);
      EXPECT_TRUE(fd.ok());
      if (fd.ok()) {
        EXPECT_EQ(pwrite(fd->get(), "data", 4, 0), 4);
      }
    }
  }

  // Opens target i; `pipe_at` are given a pipe instead (fsync of a pipe fails with
  // EINVAL), `fail_open_at` an opener error.
  Result<SyncTarget> Open(size_t i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      opened_.insert(i);
      opens_++;
    }
    if (fail_open_at.count(i)) return Status::IOError("cannot open target " + std::to_string(i));
    SyncTarget t;
    t.what = paths_[i];
    if (pipe_at.count(i)) {
      int p[2];
      EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
      close(p[1]);
      t.owned = UniqueFd(p[0]);
    } else {
      SKERRY_ASSIGN_OR_RETURN(t.owned, OpenFile(paths_[i], O_RDONLY));
    }
    t.fd = t.owned.get();
    // Counts descriptors held open at once: `keep` dies with the target.
    int now = ++open_now_;
    int seen = max_open_.load();
    while (now > seen && !max_open_.compare_exchange_weak(seen, now)) {
    }
    t.keep = std::shared_ptr<const void>(nullptr, [this](const void*) { open_now_--; });
    return t;
  }

  std::function<Result<SyncTarget>(size_t)> opener() {
    return [this](size_t i) { return Open(i); };
  }

  std::set<size_t> pipe_at, fail_open_at;
  std::set<size_t> opened() {
    std::lock_guard<std::mutex> lock(mu_);
    return opened_;
  }
  size_t opens() {
    std::lock_guard<std::mutex> lock(mu_);
    return opens_;
  }
  int max_open() const { return max_open_.load(); }
  int open_now() const { return open_now_.load(); }

 private:
  std::vector<std::string> paths_;
  std::mutex mu_;
  std::set<size_t> opened_;  // GUARDED_BY(mu_)
  size_t opens_ = 0;         // GUARDED_BY(mu_)
  std::atomic<int> open_now_{0}, max_open_{0};
};

TEST(ParallelSyncTest, SyncsEveryTargetOnceWithABoundedNumberOpen) {
  for (const EngineCase& e : kEngines) {
    SCOPED_TRACE(e.name);
    TestTempDir tmp;
    Targets targets(tmp.path(), 100);
    ParallelSync sync(e.parallelism, e.engine);
    ASSERT_TRUE(sync.Run(100, targets.opener()).ok());
    EXPECT_EQ(targets.opens(), 100u);
    EXPECT_EQ(targets.opened().size(), 100u);
    EXPECT_LE(targets.max_open(), static_cast<int>(e.parallelism));
    EXPECT_EQ(targets.open_now(), 0);  // everything closed again
  }
}

TEST(ParallelSyncTest, TargetsWithoutAFileAreSkipped) {
  for (const EngineCase& e : kEngines) {
    SCOPED_TRACE(e.name);
    ParallelSync sync(e.parallelism, e.engine);
    std::atomic<int> calls{0};
    EXPECT_TRUE(sync.Run(20, [&](size_t) -> Result<SyncTarget> {
                      calls++;
                      return SyncTarget{};
                    }).ok());
    EXPECT_EQ(calls.load(), 20);
    EXPECT_TRUE(sync.Run(0, [&](size_t) -> Result<SyncTarget> { return SyncTarget{}; }).ok());
  }
}

TEST(ParallelSyncTest, ReportsTheLowestNumberedFailure) {
  for (const EngineCase& e : kEngines) {
    SCOPED_TRACE(e.name);
    TestTempDir tmp;
    Targets targets(tmp.path(), 30);
    targets.pipe_at = {7, 5, 20};
    ParallelSync sync(e.parallelism, e.engine);
    Status st = sync.Run(30, targets.opener());
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();  // EINVAL from fsync of a pipe
    EXPECT_NE(st.message().find("fdatasync " + tmp.path() + "/f5"), std::string::npos) << st.ToString();
    EXPECT_EQ(targets.open_now(), 0);
  }
}

TEST(ParallelSyncTest, StopsIssuingAfterAFailure) {
  for (const EngineCase& e : kEngines) {
    SCOPED_TRACE(e.name);
    TestTempDir tmp;
    Targets targets(tmp.path(), 400);
    targets.fail_open_at = {3};
    ParallelSync sync(e.parallelism, e.engine);
    Status st = sync.Run(400, targets.opener());
    EXPECT_EQ(st.code(), Code::kIOError) << st.ToString();
    EXPECT_NE(st.message().find("target 3"), std::string::npos) << st.ToString();
    // Those in flight or being opened finish; nothing much after that is started.
    EXPECT_LT(targets.opens(), 3 + 2 * size_t{e.parallelism} + 1);
    EXPECT_EQ(targets.open_now(), 0);
  }
}

// Where io_uring is refused (seccomp, as container runtimes do, or io_uring_disabled),
// the same work runs over threads. In a child process, which the filter stays with.
TEST(ParallelSyncTest, UsesThreadsWhereIoUringIsRefused) {
  TestTempDir tmp;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      _exit(2);
    }
    Targets targets(tmp.path(), 50);
    ParallelSync sync(8, Engine::kUring);
    bool ok = sync.Run(50, targets.opener()).ok() && targets.opens() == 50 &&
              sync.engine_used() == Engine::kThreads;
    ok = ok && sync.Run(50, targets.opener()).ok() && sync.engine_used() == Engine::kThreads;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "cannot install a seccomp filter here";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace skerry::dirstore
