// Listener: one listening socket, Unix or TCP, and the accept of one client.
//
// Addresses are written "unix:/path/to.sock" or "tcp:HOST:PORT" ("tcp:[::1]:PORT"
// for IPv6; HOST "*" or empty for every address; PORT 0 picks a free port). A TCP
// host name may resolve to several addresses: one Listener is bound for each.
//
// Thread-safety: Accept may run on one thread while another reads address(); Close
// must not race with Accept.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/unique_fd.h"
#include "skerry/status.h"

namespace skerry::nbd {

struct AcceptedSocket {
  UniqueFd fd;
  std::string peer;  // "unix pid 1234" or "tcp 127.0.0.1:41234", for logs
};

class Listener {
 public:
  // Binds and listens. A Unix socket path left behind by a dead server is
  // replaced; one that a live server answers on is AlreadyExists.
  static Result<std::vector<Listener>> Bind(std::string_view address);

  Listener(Listener&&) = default;
  Listener& operator=(Listener&&) = default;
  ~Listener();

  int fd() const { return fd_.get(); }
  // The address actually bound (with the real port for "tcp:...:0").
  const std::string& address() const { return address_; }
  // Accepts one pending client (TCP_NODELAY set on TCP). REQUIRES: fd readable.
  Result<AcceptedSocket> Accept();
  // Stops listening; removes the socket file of a Unix listener.
  void Close();

 private:
  Listener() = default;
  UniqueFd fd_;
  std::string address_;
  std::string unix_path_;
};

}  // namespace skerry::nbd
