#include "util/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace skerry {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sun.sun_path) {
    return Status::InvalidArgument("unix socket path is empty or longer than " +
                                   std::to_string(sizeof sun.sun_path - 1) + " bytes: " + path);
  }
  std::memcpy(sun.sun_path, path.data(), path.size());
  return sun;
}

Status RemoveStaleSocket(const std::string& path, const sockaddr_un& sun) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::OK();
    return Status::FromErrno(errno, "cannot look at " + path);
  }
  if (!S_ISSOCK(st.st_mode)) return Status::AlreadyExists(path + " exists and is not a socket");
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return Status::FromErrno(errno, "socket");
  bool live = ::connect(probe, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) == 0;
  ::close(probe);
  if (live) return Status::AlreadyExists("a server is already listening on " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno(errno, "unlink stale socket " + path);
  }
  return Status::OK();
}

}  // namespace skerry
