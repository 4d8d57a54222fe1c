// Server: the NBD server library's front door. The daemon creates one with its
// ExportProvider, binds listen addresses, starts it, and shuts it down on SIGTERM.
//
//   auto server = nbd::Server::Create(provider, options);        // loads TLS files
//   server->Listen("unix:/run/skerry/nbd.sock");
//   server->Listen("tcp:127.0.0.1:10809");
//   server->Start();
//   ...
//   server->Shutdown();  // stop accepting, answer in-flight requests, flush, close
//
// Threads: one accept thread for all listeners, one thread per connection (its
// handshake and its request reader), and one WorkerPool shared by all connections
// that executes requests. docs/nbd.md describes the model.
//
// Thread-safety: Listen and Start before serving, from one thread; Shutdown and
// ServeSocket from any thread; Shutdown is idempotent and also run by the destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "nbd/connection.h"
#include "nbd/export_provider.h"
#include "nbd/listener.h"
#include "util/memory_budget.h"
#include "nbd/tls.h"
#include "nbd/transmission.h"
#include "util/unique_fd.h"
#include "nbd/worker_pool.h"
#include "skerry/status.h"

namespace skerry::nbd {

struct ServerOptions {
  // Threads executing volume I/O for all connections. Volume calls block, so this
  // is also how many requests can be at the volumes at once.
  size_t worker_threads = 32;
  size_t max_connections = 1024;  // more are accepted and closed at once
  // Bound on each step of the handshake (a receive, or the TLS handshake); the whole
  // handshake may take three times that. limits.stall_timeout bounds the other steps
  // that wait on a client (a write's payload, taking a reply).
  std::chrono::milliseconds handshake_timeout{30'000};
  TransmissionLimits limits;  // per connection
  // Bytes of requests in flight across all connections (payloads, block-status lists);
  // a reader past it waits for others to complete. 0: only the per-connection bound.
  uint64_t max_inflight_memory = 1ull << 30;
  TlsOptions tls;
};

class Server {
 public:
  // InvalidArgument when TLS is misconfigured.
  static Result<std::unique_ptr<Server>> Create(std::shared_ptr<ExportProvider> provider,
                                                const ServerOptions& options);
  ~Server();

  // Binds "unix:PATH" or "tcp:HOST:PORT" (listener.h). REQUIRES: before Start.
  Status Listen(std::string_view address);
  // Every address bound so far, ports resolved.
  std::vector<std::string> addresses() const;
  // Starts accepting clients.
  Status Start();
  // Replaces the TLS setup for connections that arrive from now on (certificates and keys
  // are read again; the mode may change too). On error the current setup stays.
  Status ReloadTls(const TlsOptions& tls);
  // The server-wide in-flight memory bound (options.max_inflight_memory).
  const MemoryBudget& budget() const { return budget_; }
  // How many readers may spin for their clients at once (limits.busy_poll_ns).
  size_t spin_slots() const { return spin_slots_.limit(); }
  // Serves an already connected stream socket (socket activation; tests).
  void ServeSocket(UniqueFd fd, std::string peer);
  // Stops accepting, lets every connection answer its in-flight requests, flush
  // and release its export, then returns. Blocks until all connections are gone.
  void Shutdown();

 private:
  Server(std::shared_ptr<ExportProvider> provider, const ServerOptions& options,
         std::shared_ptr<TlsContext> tls);
  void AcceptLoop();
  void StartConnection(UniqueFd fd, std::string peer);
  void ReapFinished();  // joins threads of connections that ended
  void Wake();
  // Ends connections whose client stalled a step past its deadline (StallWatch); run by
  // the accept thread every stall_tick_, and during Shutdown while connections drain.
  void CheckStalls();

  // How often CheckStalls runs: a fraction of the shortest deadline, within 10 ms..1 s.
  const std::chrono::milliseconds stall_tick_;

  struct Active {
    std::unique_ptr<Connection> connection;
    std::thread thread;
  };

  const std::shared_ptr<ExportProvider> provider_;
  const ServerOptions options_;
  // Before the pool and the connections: their requests give bytes back until the end.
  MemoryBudget budget_;
  SpinSlots spin_slots_;  // readers spinning for their clients (limits.busy_poll_ns)
  TlsSlot tls_;
  WorkerPool pool_;
  ConnectionContext context_;

  std::vector<Listener> listeners_;
  UniqueFd wake_fd_;  // eventfd: shutdown, or a connection ended
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Active> active_;
  std::vector<uint64_t> finished_;
};

}  // namespace skerry::nbd
