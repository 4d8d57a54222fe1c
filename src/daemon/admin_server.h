// AdminServer: the daemon side of the admin protocol (admin_client.h) on a Unix socket,
// serving one request per connection on its own thread. A request must arrive whole within
// 5 s and its answer be taken within 5 s, so that no client holds the socket.
//
// The socket is created with mode 0600: whoever can use it can snapshot and resize volumes.
//
// Thread-safety: Start once; Stop from any thread (idempotent, also run by the destructor).
// Stop drops a connection whose request is still arriving; an operation under way finishes.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "daemon/export_registry.h"
#include "skerry/status.h"

namespace skerry::daemon {

class AdminServer {
 public:
  explicit AdminServer(ExportRegistry& registry) : registry_(registry) {}
  ~AdminServer();

  Status Start(const std::string& path);
  void Stop();

 private:
  void Loop();
  void Serve(int fd);

  ExportRegistry& registry_;
  std::string path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace skerry::daemon
