#include "nbd/connection.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "nbd/handshake.h"
#include "nbd/transport.h"
#include "skerry/volume.h"

namespace skerry::nbd {
namespace {
// The whole handshake may take this many times the bound on each of its receives.
constexpr int kHandshakeSteps = 3;
}  // namespace

Connection::Connection(UniqueFd fd, std::string peer, const ConnectionContext& context)
    : peer_(std::move(peer)), context_(context), fd_(std::move(fd)) {}

void Connection::Run() {
  int fd;
  {
    std::lock_guard lock(fd_mu_);
    fd = fd_.get();
  }
  if (fd >= 0) Serve(fd);
  std::lock_guard lock(fd_mu_);
  fd_.Reset();
}

void Connection::Stop() {
  std::lock_guard lock(fd_mu_);
  // SHUT_RD wakes the reader with end-of-stream; replies can still be sent.
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RD);
}

bool Connection::EndIfStalled(int64_t now_ms) {
  StallWatch::Step step = watch_.Overdue(now_ms);
  if (step == StallWatch::kSteps) return false;
  std::lock_guard lock(fd_mu_);
  if (!fd_.valid() || ended_for_stall_) return false;
  ended_for_stall_ = true;
  spdlog::warn("nbd: {}: the client {}; ending the connection", peer_, StallWatch::StepName(step));
  // Both directions: a blocked send fails as well as a blocked receive.
  ::shutdown(fd_.get(), SHUT_RDWR);
  return true;
}

void Connection::SetReceiveTimeout(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void Connection::Serve(int fd) {
  spdlog::info("nbd: {}: connected", peer_);
  SetReceiveTimeout(fd, context_.handshake_timeout);
  std::unique_ptr<Transport> transport = std::make_unique<SocketTransport>(fd);
  // The TLS setup current now, kept for the whole session even if SIGHUP replaces it.
  std::shared_ptr<const TlsContext> tls = context_.tls ? context_.tls->Get() : nullptr;
  HandshakeConfig config{context_.provider, tls && tls->mode() != TlsMode::kOff ? tls.get() : nullptr,
                         context_.handshake_timeout};
  Handshake handshake(transport, fd, config, peer_);
  // Each receive is bounded by the socket's timeout; the whole handshake too, so a client
  // trickling bytes cannot sit in it (holding a connection slot) for long.
  watch_.Start(StallWatch::kHandshake, kHandshakeSteps * context_.handshake_timeout);
  Result<NegotiatedExport> negotiated = handshake.Run();
  watch_.Done(StallWatch::kHandshake);
  if (!negotiated.ok()) {
    if (IsPeerClosed(negotiated.status())) {
      spdlog::info("nbd: {}: closed by the client during the handshake", peer_);
    } else {
      spdlog::warn("nbd: {}: handshake failed: {}", peer_, negotiated.status().ToString());
    }
    return;
  }
  NegotiatedExport& exp = *negotiated;
  if (!exp.volume) {
    transport->Bye();
    spdlog::info("nbd: {}: client ended the negotiation", peer_);
    return;
  }
  SetReceiveTimeout(fd, std::chrono::milliseconds(0));  // idle clients are fine from here
  bool writable = !exp.volume->read_only();
  spdlog::info("nbd: {}: serving export '{}' ({}, {} bytes{}{})", peer_, exp.name,
               writable ? "read-write" : "read-only", exp.size, transport->is_tls() ? ", TLS" : "",
               exp.structured_replies ? ", structured replies" : "");

  Transmission::Outcome& outcome = outcome_;
  {
    Transmission transmission(*transport, fd, exp, *context_.pool, context_.limits, peer_, &watch_);
    outcome = transmission.Run();
  }
  if (!outcome.status.ok()) {
    spdlog::warn("nbd: {}: protocol error: {}", peer_, outcome.status.ToString());
  }
  if (writable) {
    // Cheap insurance for clients that leave without a final flush; the provider
    // flushes again when it closes the volume.
    Status st = exp.volume->Flush();
    if (!st.ok()) spdlog::warn("nbd: {}: flush at close failed: {}", peer_, st.ToString());
  }
  context_.provider->ReleaseExport(exp.name, exp.volume);
  // How many requests the reader ran itself tells why a connection was fast or slow
  // (docs/nbd.md, "Inline fast path", "Busy polling").
  spdlog::info("nbd: {}: closed after {} requests, {} run on the reader, {} caught by {} spins ({})", peer_,
               outcome.requests, outcome.run_on_reader, outcome.caught_by_spin, outcome.spins,
               outcome.disconnect_requested ? "client disconnected" : "connection ended");
}

}  // namespace skerry::nbd
