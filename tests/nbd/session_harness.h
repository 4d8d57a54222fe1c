// SessionHarness: one server-side Connection on one end of a socketpair, a
// RawClient on the other, over MemVolumes. The unit tests' stage.
//
// Thread-safety: the connection runs on its own thread; the test thread drives
// the client.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string>
#include <thread>

#include "mem_export_provider.h"
#include "mem_volume.h"
#include "nbd/connection.h"
#include "nbd/tls.h"
#include "nbd/worker_pool.h"
#include "raw_client.h"

namespace skerry::nbd::testing {

class SessionHarness {
 public:
  // Exports: "disk" (1 MiB, writable), "ro" (1 MiB, read-only, first half 0xab),
  // "bad" (1 MiB, I/O at 64 KiB fails with EIO), "big" (4 GiB, empty), "async" (1 MiB,
  // reads complete on another thread, out of order; I/O at 512 KiB fails), "splice" (1 MiB,
  // zero-copy reads through a pipe; I/O at 768 KiB fails). `tls` may be null.
  // `limits`: the connection's TransmissionLimits.
  explicit SessionHarness(const TlsContext* tls = nullptr, const TransmissionLimits& limits = {})
      : pool_(4, 256) {
    provider_.Add(std::make_shared<MemVolume>("disk", 1 << 20));
    auto ro = std::make_shared<MemVolume>("ro", 1 << 20, 64 * 1024, /*read_only=*/true);
    ro->Fill(0, 512 * 1024, static_cast<char>(0xab));
    provider_.Add(ro);
    auto bad = std::make_shared<MemVolume>("bad", 1 << 20);
    bad->InjectFault(64 * 1024, 4096, Status::IOError("injected"));
    provider_.Add(bad);
    provider_.Add(std::make_shared<MemVolume>("big", 4ull << 30));
    auto async = std::make_shared<MemVolume>("async", 1 << 20);
    async->EnableAsyncReads();
    async->InjectFault(512 * 1024, 4096, Status::IOError("injected"));
    provider_.Add(async);
    auto splice = std::make_shared<MemVolume>("splice", 1 << 20);
    splice->EnablePipeReads();
    splice->InjectFault(768 * 1024, 4096, Status::IOError("injected"));
    provider_.Add(splice);

    context_.provider = &provider_;
    tls_.Set(std::shared_ptr<const TlsContext>(tls, [](const TlsContext*) {}));  // not owned
    context_.tls = &tls_;
    context_.pool = &pool_;
    context_.handshake_timeout = std::chrono::seconds(10);
    context_.limits = limits;
    int fds[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    client_ = std::make_unique<RawClient>(fds[0]);
    connection_ = std::make_unique<Connection>(UniqueFd(fds[1]), "test", context_);
    thread_ = std::thread([this] { connection_->Run(); });
  }

  ~SessionHarness() { Finish(); }

  // Closes the client side and waits for the server side to end.
  void Finish() {
    if (!thread_.joinable()) return;
    ::shutdown(client_->fd(), SHUT_RDWR);
    thread_.join();
  }

  // The connection's transmission outcome. REQUIRES: after Finish().
  const Transmission::Outcome& outcome() const { return connection_->outcome(); }

  RawClient& client() { return *client_; }
  MemExportProvider& provider() { return provider_; }
  MemVolume& volume(const std::string& name) { return *provider_.Get(name); }
  // The connection's thread, which reads the client's requests (and runs some itself).
  std::thread::id reader_thread() const { return thread_.get_id(); }

 private:
  MemExportProvider provider_;
  WorkerPool pool_;
  TlsSlot tls_;
  ConnectionContext context_;
  std::unique_ptr<RawClient> client_;
  std::unique_ptr<Connection> connection_;
  std::thread thread_;
};

}  // namespace skerry::nbd::testing
