// Unix socket paths, shared by the NBD listener and the admin socket.
#pragma once

#include <sys/un.h>

#include <string>

#include "skerry/status.h"

namespace skerry {

// The address of the Unix socket at `path`; InvalidArgument if the path is empty or too
// long for sockaddr_un.
Result<sockaddr_un> UnixAddress(const std::string& path);

// Makes way for binding a Unix socket at `path` (address `sun`): removes a socket file that
// nobody answers on (a server that died without cleaning up). AlreadyExists if a server
// answers there, or if the path is anything but a socket: that is somebody's file, never
// ours to delete. A path that cannot be looked at (EACCES, ELOOP) is an error too.
Status RemoveStaleSocket(const std::string& path, const sockaddr_un& sun);

}  // namespace skerry
