// Connection: one NBD client from accept to close.
//
// Run() drives the whole session on the calling thread: the handshake (with a
// receive timeout, so a silent client cannot hold a thread forever), then the
// transmission phase, then a flush of a writable export and
// ExportProvider::ReleaseExport, then the close of the socket.
//
// Thread-safety: Run is called once, by the connection's own thread. Stop may be
// called from any thread at any time, also before Run or after it returned.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "nbd/export_provider.h"
#include "nbd/stall_watch.h"
#include "nbd/tls.h"
#include "nbd/transmission.h"
#include "util/unique_fd.h"
#include "nbd/worker_pool.h"

namespace skerry::nbd {

// The server's TLS setup, replaceable while it runs (SIGHUP after a certificate was renewed):
// each connection takes the one current when it connects and keeps it to its end.
class TlsSlot {
 public:
  std::shared_ptr<const TlsContext> Get() const {
    std::lock_guard lock(mu_);
    return tls_;
  }
  void Set(std::shared_ptr<const TlsContext> tls) {
    std::lock_guard lock(mu_);
    tls_ = std::move(tls);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const TlsContext> tls_;
};

// What every connection of a server shares.
struct ConnectionContext {
  ExportProvider* provider = nullptr;
  const TlsSlot* tls = nullptr;  // null, or holding null or a kOff context: TLS off
  WorkerPool* pool = nullptr;
  std::chrono::milliseconds handshake_timeout{30'000};
  TransmissionLimits limits;
};

class Connection {
 public:
  Connection(UniqueFd fd, std::string peer, const ConnectionContext& context);

  // The whole session; returns after the socket is closed.
  void Run();
  // Graceful stop for server shutdown: no further requests are read; those in
  // flight are answered, then the session ends as if the client had left.
  void Stop();
  // Ends the session (shuts the socket down) when a step that waits on the client ran
  // past its deadline at `now_ms` (StallWatch); true when it did. Any thread, any time.
  bool EndIfStalled(int64_t now_ms);
  // What the transmission phase did (requests, how they ran). After Run returned.
  const Transmission::Outcome& outcome() const { return outcome_; }

 private:
  void Serve(int fd);
  void SetReceiveTimeout(int fd, std::chrono::milliseconds timeout);

  const std::string peer_;
  const ConnectionContext& context_;
  std::mutex fd_mu_;  // Stop must never touch a closed (and maybe reused) fd number
  UniqueFd fd_;
  StallWatch watch_;
  bool ended_for_stall_ = false;  // under fd_mu_: log and shut down once
  Transmission::Outcome outcome_;  // written by Run's thread
};

}  // namespace skerry::nbd
