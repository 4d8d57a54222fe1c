// skerryd: serves skerry volumes over NBD to QEMU and every NBD client.
//
//   skerryd --store dir:/srv/skerry --listen unix:/run/skerry/nbd.sock --listen tcp:127.0.0.1:10809
//   skerryd --config /etc/skerry/skerryd.toml
//
// Runs in the foreground and logs to stderr. SIGTERM/SIGINT: stop accepting, finish
// in-flight requests, flush, close every volume, exit 0. SIGHUP: re-read the config file
// and apply what can change while running (log level).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "daemon/admin_server.h"
#include "daemon/config.h"
#include "daemon/export_registry.h"
#include "daemon/identity.h"
#include "nbd/server.h"
#include "skerry/object_store.h"
#include "skerry/version.h"
#include "skerry/volume.h"
#include "util/sizes.h"

namespace skerry::daemon {
namespace {

int Die(const std::string& what) {
  fmt::print(stderr, "skerryd: error: {}\n", what);
  return 1;
}

Result<spdlog::level::level_enum> ParseLogLevel(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    return Status::InvalidArgument(fmt::format("unknown log level '{}' (trace, debug, info, warn, error)", level));
  return parsed;
}

Status ApplyLogLevel(const std::string& level) {
  SKERRY_ASSIGN_OR_RETURN(auto parsed, ParseLogLevel(level));
  spdlog::set_level(parsed);
  return Status::OK();
}

int Run(int argc, char** argv) {
  CLI::App app{"skerryd: serves skerry volumes over NBD"};
  app.set_version_flag("--version", SKERRY_VERSION_STRING);
  std::string config_path, store, admin_socket, log_level, tls_mode, tls_cert, tls_key, tls_ca, tls_psk,
      inflight_memory, copy_up, partial_blocks, handoff;
  std::vector<std::string> listen;
  int workers = 0, busy_poll_us = -1;
  app.add_option("--config,-c", config_path, "TOML config file");
  app.add_option("--store", store, "Store URI: dir:PATH (overrides the config file)");
  app.add_option("--listen,-l", listen, "unix:PATH or tcp:HOST:PORT; repeat for several (default tcp:127.0.0.1:10809 and unix:/run/skerry/nbd.sock)");
  app.add_option("--admin-socket", admin_socket, "Unix socket for skerry CLI operations on open volumes");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_option("--workers", workers, "Threads executing volume I/O")->check(CLI::Range(1, 1024));
  app.add_option("--max-inflight-memory", inflight_memory,
                 "Request bytes in flight over all clients, e.g. 1G (0: no server-wide bound)");
  app.add_option("--busy-poll-us", busy_poll_us,
                 "Longest a connection's reader spins for its client's next request before sleeping (0: never)")
      ->check(CLI::Range(0, static_cast<int>(kMaxBusyPollUs)));
  app.add_option("--copy-up", copy_up,
                 "How the first write into a block shared with a snapshot copies it: background (default), on-demand or off");
  app.add_option("--partial-blocks", partial_blocks,
                 "on (default): a clone's first write into its parent's block copies nothing; off: the block is copied")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--handoff", handoff,
                 "on (default): a volume another daemon writes opens as a standby and its first write takes it over "
                 "(live migration); off: exclusive opens")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--tls", tls_mode, "off, optional or required");
  app.add_option("--tls-cert", tls_cert, "Server certificate (PEM)");
  app.add_option("--tls-key", tls_key, "Server private key (PEM)");
  app.add_option("--tls-client-ca", tls_ca, "CA that client certificates must be signed by");
  app.add_option("--tls-psk", tls_psk, "PSK file (psktool format)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  // Block the signals we handle before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that vanishes mid-reply is an error return, not death

  auto logger = spdlog::stderr_color_mt("skerryd");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // The config file, then the flags over it: at start and again on SIGHUP, so that a
  // reload never undoes what the command line said.
  auto load_config = [&](DaemonConfig* c) -> Status {
    if (!config_path.empty()) SKERRY_RETURN_IF_ERROR(LoadConfigFile(config_path, c));
    if (!store.empty()) c->store = store;
    if (!listen.empty()) c->listen = listen;
    if (c->listen.empty()) c->listen = {kDefaultTcpListen, kDefaultUnixListen};
    if (!admin_socket.empty()) c->admin_socket = admin_socket;
    if (c->admin_socket.empty()) c->admin_socket = kDefaultAdminSocket;
    SKERRY_ASSIGN_OR_RETURN(c->admin_socket, AdminSocketPath(c->admin_socket));
    if (!log_level.empty()) c->log_level = log_level;
    if (workers > 0) c->server.worker_threads = static_cast<size_t>(workers);
    if (busy_poll_us >= 0) c->server.limits.busy_poll_ns = static_cast<uint64_t>(busy_poll_us) * 1000;
    if (!inflight_memory.empty()) {
      SKERRY_ASSIGN_OR_RETURN(c->server.max_inflight_memory, ParseInflightMemory(inflight_memory));
    }
    if (!copy_up.empty()) {
      SKERRY_ASSIGN_OR_RETURN(c->volumes.copy_up, ParseCopyUpMode(copy_up));
    }
    if (!partial_blocks.empty()) c->volumes.partial_blocks = partial_blocks == "on";
    if (!handoff.empty()) c->handoff = handoff == "on";
    c->volumes.lease_ms = c->lock_lease_ms;
    if (!tls_mode.empty()) {
      SKERRY_ASSIGN_OR_RETURN(c->server.tls.mode, nbd::ParseTlsMode(tls_mode));
    }
    if (!tls_cert.empty()) c->server.tls.cert_file = tls_cert;
    if (!tls_key.empty()) c->server.tls.key_file = tls_key;
    if (!tls_ca.empty()) c->server.tls.client_ca_file = tls_ca;
    if (!tls_psk.empty()) c->server.tls.psk_file = tls_psk;
    return Status::OK();
  };
  DaemonConfig config;
  if (Status st = load_config(&config); !st.ok()) return Die(st.message());
  if (Status st = ApplyLogLevel(config.log_level); !st.ok()) return Die(st.message());
  if (config.store.empty()) return Die("no store: give --store URI or store = \"...\" in the config file");

  auto opened = OpenStore(config.store);
  if (!opened.ok()) return Die(fmt::format("cannot open store {}: {}", config.store, opened.status().message()));
  auto catalog = Catalog::Open(*opened, config.volumes);
  if (!catalog.ok()) return Die(fmt::format("cannot open store {}: {}", config.store, catalog.status().message()));

  if (config.state_file.empty()) config.state_file = config.admin_socket + ".state";
  auto identity = DaemonIdentity::Acquire(config.state_file, config.admin_socket);
  if (!identity.ok()) return Die(identity.status().message());
  std::shared_ptr<const DaemonIdentity> me = std::move(*identity);
  ExportOptions exports;
  exports.owner = me->owner();
  exports.lease_ms = config.lock_lease_ms;
  exports.handoff = config.handoff;
  exports.owner_is_gone = [me](const std::string& owner) { return me->IsPredecessor(owner); };
  auto registry = std::make_shared<ExportRegistry>(std::move(*catalog), std::move(exports));

  auto server = nbd::Server::Create(registry, config.server);
  if (!server.ok()) return Die(server.status().message());
  for (const std::string& address : config.listen) {
    Status st = (*server)->Listen(address);
    if (!st.ok()) return Die(fmt::format("cannot listen on {}: {}", address, st.message()));
  }
  AdminServer admin(*registry);
  if (Status st = admin.Start(config.admin_socket); !st.ok()) return Die(st.message());
  if (Status st = (*server)->Start(); !st.ok()) return Die(st.message());

  const size_t spinners = (*server)->spin_slots();
  const std::string busy_poll = config.server.limits.busy_poll_ns == 0 ? std::string("off")
                                : spinners == 0 ? std::string("off (one CPU)")
                                                : fmt::format("up to {} us, {} readers at once",
                                                              config.server.limits.busy_poll_ns / 1000, spinners);
  spdlog::info("skerryd serving store {} (tls {}, {} workers, requests in flight: {}, busy polling: {})",
               config.store, nbd::TlsModeName(config.server.tls.mode), config.server.worker_threads,
               config.server.max_inflight_memory ? "up to " + FormatSize(config.server.max_inflight_memory) + " over all clients"
                                                 : std::string("64 MiB per client, no server-wide bound"),
               busy_poll);
  const VolumeOptions& v = config.volumes;
  spdlog::info("volumes: {}; lock owner '{}' ({} earlier instances of state file {} known dead)",
               config.handoff ? "cooperative opens (standby, handoff for live migration)" : "exclusive opens",
               me->owner(), me->predecessors(), config.state_file);
  spdlog::info("volumes: copy-up {}, partial blocks {}, write-lock lease {} s",
               v.copy_up == CopyUpMode::kOff        ? std::string("before the write returns (off)")
               : v.copy_up == CopyUpMode::kOnDemand ? std::string("deferred, on demand")
                                                    : fmt::format("deferred, {} copier threads per volume", v.copier_threads),
               v.partial_blocks ? "on" : "off", v.lease_ms / 1000);
  for (const std::string& a : (*server)->addresses()) spdlog::info("listening on {}", a);
  spdlog::info("admin socket {}", config.admin_socket);
  if (me->predecessors() > 0) registry->ReleasePredecessorLocks();

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      // Reloads the log level and the TLS setup (certificates, keys, PSK file, mode: for
      // connections from now on; connected clients keep theirs). All or nothing.
      DaemonConfig fresh;
      Status st = load_config(&fresh);
      if (st.ok()) st = ParseLogLevel(fresh.log_level).status();  // check before changing anything
      if (st.ok()) st = (*server)->ReloadTls(fresh.server.tls);
      if (st.ok()) st = ApplyLogLevel(fresh.log_level);
      if (!st.ok()) {
        spdlog::error("SIGHUP: not reloaded, the running configuration stays: {}", st.message());
        continue;
      }
      if (fresh.store != config.store || fresh.listen != config.listen ||
          fresh.admin_socket != config.admin_socket || fresh.lock_lease_ms != config.lock_lease_ms ||
          fresh.server.worker_threads != config.server.worker_threads ||
          fresh.server.max_connections != config.server.max_connections ||
          fresh.server.max_inflight_memory != config.server.max_inflight_memory ||
          fresh.server.limits.stall_timeout != config.server.limits.stall_timeout ||
          fresh.server.limits.busy_poll_ns != config.server.limits.busy_poll_ns ||
          fresh.volumes.copy_up != config.volumes.copy_up ||
          fresh.volumes.copier_threads != config.volumes.copier_threads ||
          fresh.volumes.partial_blocks != config.volumes.partial_blocks || fresh.handoff != config.handoff ||
          (!fresh.state_file.empty() && fresh.state_file != config.state_file))
        spdlog::warn(
            "SIGHUP: store, listen addresses, admin socket, workers, lease, max_connections, "
            "max_inflight_memory, stall_timeout_seconds, busy_poll_us, copy_up, copier_threads and "
            "partial_blocks, handoff and state_file change only on restart");
      spdlog::info("SIGHUP: reloaded {}: log level {}, TLS {}",
                   config_path.empty() ? "the command line's files" : config_path,
                   spdlog::level::to_string_view(spdlog::get_level()), nbd::TlsModeName(fresh.server.tls.mode));
      continue;
    }
    spdlog::info("{}: stopping: finishing in-flight requests, flushing, closing volumes",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }
  admin.Stop();
  (*server)->Shutdown();
  Status st = registry->CloseAll();
  if (!st.ok()) {
    spdlog::error("shutdown: {}", st.ToString());
    return 1;
  }
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace
}  // namespace skerry::daemon

int main(int argc, char** argv) { return skerry::daemon::Run(argc, argv); }
