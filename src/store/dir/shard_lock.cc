#include "store/dir/shard_lock.h"

#include <fcntl.h>

#include <cerrno>
#include <utility>

namespace skerry::dirstore {
namespace {

int SetByteLock(int fd, uint32_t byte, short type, bool wait) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  int rc;
  do {
    rc = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

ShardLocks::Guard::Guard(Guard&& other) noexcept
    : locks_(std::exchange(other.locks_, nullptr)), shard_(other.shard_) {}

ShardLocks::Guard::~Guard() {
  if (locks_ != nullptr) locks_->Unlock(shard_);
}

ShardLocks::ShardLocks(std::string path, UniqueFd fd, uint32_t shards)
    : path_(std::move(path)), fd_(std::move(fd)), mutexes_(shards) {}

Result<std::unique_ptr<ShardLocks>> ShardLocks::Open(const std::string& path, uint32_t shards) {
  SKERRY_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR));
  return std::unique_ptr<ShardLocks>(new ShardLocks(path, std::move(fd), shards));
}

Result<ShardLocks::Guard> ShardLocks::Lock(uint32_t shard) {
  mutexes_[shard].lock();
  if (SetByteLock(fd_.get(), shard, F_WRLCK, /*wait=*/true) != 0) {
    int err = errno;
    mutexes_[shard].unlock();
    return Status::FromErrno(err, "lock byte " + std::to_string(shard) + " of " + path_ +
                                      " (does this file system support fcntl locks?)");
  }
  return Guard(this, shard);
}

void ShardLocks::Unlock(uint32_t shard) {
  // Failing to unlock is only possible if the fd is gone; closing it releases anyway.
  SetByteLock(fd_.get(), shard, F_UNLCK, /*wait=*/false);
  mutexes_[shard].unlock();
}

}  // namespace skerry::dirstore
