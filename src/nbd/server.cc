#include "nbd/server.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/steady_ms.h"

namespace skerry::nbd {
namespace {

// Requests queued for workers across all connections before readers wait.
constexpr size_t kQueuePerWorker = 64;

std::chrono::milliseconds StallTick(const ServerOptions& o) {
  using std::chrono::milliseconds;
  milliseconds shortest = o.handshake_timeout;
  if (o.limits.stall_timeout.count() > 0) shortest = std::min(shortest, o.limits.stall_timeout);
  return std::clamp(shortest / 4, milliseconds(10), milliseconds(1000));
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(std::shared_ptr<ExportProvider> provider,
                                               const ServerOptions& options) {
  if (!provider) return Status::InvalidArgument("no export provider");
  SKERRY_ASSIGN_OR_RETURN(std::shared_ptr<TlsContext> tls, TlsContext::Create(options.tls));
  std::unique_ptr<Server> server(new Server(std::move(provider), options, std::move(tls)));
  server->wake_fd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!server->wake_fd_.valid()) return Status::FromErrno(errno, "eventfd");
  return server;
}

Server::Server(std::shared_ptr<ExportProvider> provider, const ServerOptions& options,
               std::shared_ptr<TlsContext> tls)
    : stall_tick_(StallTick(options)),
      provider_(std::move(provider)),
      options_(options),
      budget_(options.max_inflight_memory),
      spin_slots_(SpinSlots::DefaultLimit()),
      pool_(options.worker_threads, options.worker_threads * kQueuePerWorker) {
  tls_.Set(std::move(tls));
  context_.provider = provider_.get();
  context_.tls = &tls_;
  context_.pool = &pool_;
  context_.handshake_timeout = options.handshake_timeout;
  context_.limits = options.limits;
  if (options.max_inflight_memory > 0) context_.limits.server_budget = &budget_;
  context_.limits.spin_slots = &spin_slots_;
}

Server::~Server() { Shutdown(); }

Status Server::Listen(std::string_view address) {
  SKERRY_ASSIGN_OR_RETURN(std::vector<Listener> bound, Listener::Bind(address));
  for (Listener& l : bound) {
    spdlog::info("nbd: listening on {} (TLS {})", l.address(), TlsModeName(tls_.Get()->mode()));
    listeners_.push_back(std::move(l));
  }
  return Status::OK();
}

Status Server::ReloadTls(const TlsOptions& options) {
  SKERRY_ASSIGN_OR_RETURN(std::shared_ptr<TlsContext> tls, TlsContext::Create(options));
  spdlog::info("nbd: TLS {} for new connections", TlsModeName(tls->mode()));
  tls_.Set(std::move(tls));
  return Status::OK();
}

std::vector<std::string> Server::addresses() const {
  std::vector<std::string> out;
  for (const Listener& l : listeners_) out.push_back(l.address());
  return out;
}

Status Server::Start() {
  if (accept_thread_.joinable()) return Status::InvalidArgument("server already started");
  if (stopping_) return Status::InvalidArgument("server is shut down");
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return Status::OK();
}

void Server::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

void Server::AcceptLoop() {
  std::vector<pollfd> fds;
  fds.push_back({wake_fd_.get(), POLLIN, 0});
  for (const Listener& l : listeners_) fds.push_back({l.fd(), POLLIN, 0});
  while (!stopping_) {
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(stall_tick_.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("nbd: poll: {}", std::strerror(errno));
      break;
    }
    CheckStalls();
    if (fds[0].revents) {
      uint64_t count;
      (void)!::read(wake_fd_.get(), &count, sizeof count);
      ReapFinished();
    }
    for (size_t i = 1; i < fds.size() && !stopping_; ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      Result<AcceptedSocket> accepted = listeners_[i - 1].Accept();
      if (!accepted.ok()) {
        int err = accepted.status().sys_errno();
        if (err == EINTR || err == EAGAIN || err == ECONNABORTED) continue;
        spdlog::error("nbd: {}", accepted.status().ToString());
        // Out of descriptors: a pending client stays readable, so back off
        // rather than spin on it.
        if (err == EMFILE || err == ENFILE)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      StartConnection(std::move(accepted->fd), std::move(accepted->peer));
    }
  }
}

void Server::ServeSocket(UniqueFd fd, std::string peer) {
  if (stopping_) return;  // dropping fd closes it
  StartConnection(std::move(fd), std::move(peer));
}

void Server::StartConnection(UniqueFd fd, std::string peer) {
  ReapFinished();
  std::lock_guard lock(mu_);
  if (stopping_) return;
  if (active_.size() >= options_.max_connections) {
    spdlog::warn("nbd: {}: refused, already {} connections", peer, active_.size());
    return;
  }
  uint64_t id = next_id_++;
  auto connection =
      std::make_unique<Connection>(std::move(fd), peer + " #" + std::to_string(id), context_);
  Connection* raw = connection.get();
  Active& slot = active_[id];
  slot.connection = std::move(connection);
  slot.thread = std::thread([this, raw, id] {
    raw->Run();
    {
      std::lock_guard lock(mu_);
      finished_.push_back(id);
    }
    Wake();
  });
}

void Server::ReapFinished() {
  std::vector<Active> done;
  {
    std::lock_guard lock(mu_);
    for (uint64_t id : finished_) {
      auto it = active_.find(id);
      if (it == active_.end()) continue;
      done.push_back(std::move(it->second));
      active_.erase(it);
    }
    finished_.clear();
  }
  for (Active& a : done) a.thread.join();
}

void Server::CheckStalls() {
  int64_t now = SteadyMs();
  std::lock_guard lock(mu_);
  for (auto& [id, active] : active_) active.connection->EndIfStalled(now);
}

void Server::Shutdown() {
  if (stopping_.exchange(true)) return;
  Wake();
  if (accept_thread_.joinable()) accept_thread_.join();
  for (Listener& l : listeners_) l.Close();

  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    if (!active_.empty()) spdlog::info("nbd: shutting down, ending {} connections", active_.size());
    for (auto& [id, active] : active_) {
      active.connection->Stop();
      threads.push_back(std::move(active.thread));
    }
  }
  // Replies still in flight go out, unless their client stopped taking them: keep ending
  // stalled connections meanwhile, or one such client would hold the shutdown forever.
  std::atomic<bool> drained{false};
  std::thread watcher([&] {
    while (!drained.load()) {
      std::this_thread::sleep_for(stall_tick_);
      CheckStalls();
    }
  });
  for (std::thread& t : threads) t.join();
  drained = true;
  watcher.join();
  {
    std::lock_guard lock(mu_);
    active_.clear();
    finished_.clear();
  }
  pool_.Stop();
  spdlog::info("nbd: server stopped");
}

}  // namespace skerry::nbd
