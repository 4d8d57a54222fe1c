// UniqueFd: owns one file descriptor and closes it once. The one owning fd of skerry:
// the directory store's files, the NBD server's sockets and pipes.
//
// Thread-safety: like a unique_ptr; the owner must not race with itself.
#pragma once

#include <unistd.h>

#include <utility>

namespace skerry {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership: the caller closes the fd.
  int Release() { return std::exchange(fd_, -1); }
  // Closes the fd held, if any, and owns `fd` instead.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace skerry
