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
#include "nbd/server.h"
#include "skerry/object_store.h"
#include "skerry/volume.h"

namespace skerry::daemon {
namespace {

int Die(const std::string& what) {
  fmt::print(stderr, "skerryd: error: {}\n", what);
  return 1;
}

Status ApplyLogLevel(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    return Status::InvalidArgument(fmt::format("unknown log level '{}' (trace, debug, info, warn, error)", level));
  spdlog::set_level(parsed);
  return Status::OK();
}

int Run(int argc, char** argv) {
  CLI::App app{"skerryd: serves skerry volumes over NBD"};
  std::string config_path, store, admin_socket, log_level, tls_mode, tls_cert, tls_key, tls_ca, tls_psk;
  std::vector<std::string> listen;
  int workers = 0;
  app.add_option("--config,-c", config_path, "TOML config file");
  app.add_option("--store", store, "Store URI: dir:PATH (overrides the config file)");
  app.add_option("--listen,-l", listen, "unix:PATH or tcp:HOST:PORT; repeat for several (default tcp:127.0.0.1:10809 and unix:/run/skerry/nbd.sock)");
  app.add_option("--admin-socket", admin_socket, "Unix socket for skerry CLI operations on open volumes");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_option("--workers", workers, "Threads executing volume I/O")->check(CLI::Range(1, 1024));
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

  DaemonConfig config;
  if (!config_path.empty()) {
    Status st = LoadConfigFile(config_path, &config);
    if (!st.ok()) return Die(st.message());
  }
  if (!store.empty()) config.store = store;
  if (!listen.empty()) config.listen = listen;
  if (config.listen.empty()) config.listen = {kDefaultTcpListen, kDefaultUnixListen};
  if (!admin_socket.empty()) config.admin_socket = admin_socket;
  if (config.admin_socket.empty()) config.admin_socket = kDefaultAdminSocket;
  if (!log_level.empty()) config.log_level = log_level;
  if (workers > 0) config.server.worker_threads = static_cast<size_t>(workers);
  if (!tls_mode.empty()) {
    auto mode = nbd::ParseTlsMode(tls_mode);
    if (!mode.ok()) return Die(mode.status().message());
    config.server.tls.mode = *mode;
  }
  if (!tls_cert.empty()) config.server.tls.cert_file = tls_cert;
  if (!tls_key.empty()) config.server.tls.key_file = tls_key;
  if (!tls_ca.empty()) config.server.tls.client_ca_file = tls_ca;
  if (!tls_psk.empty()) config.server.tls.psk_file = tls_psk;
  if (Status st = ApplyLogLevel(config.log_level); !st.ok()) return Die(st.message());
  if (config.store.empty()) return Die("no store: give --store URI or store = \"...\" in the config file");

  auto opened = OpenStore(config.store);
  if (!opened.ok()) return Die(fmt::format("cannot open store {}: {}", config.store, opened.status().message()));
  auto catalog = Catalog::Open(*opened);
  if (!catalog.ok()) return Die(fmt::format("cannot open store {}: {}", config.store, catalog.status().message()));

  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::string owner = fmt::format("skerryd@{}:{} admin={}", host, getpid(), config.admin_socket);
  auto registry = std::make_shared<ExportRegistry>(std::move(*catalog), owner, config.lock_lease_ms);

  auto server = nbd::Server::Create(registry, config.server);
  if (!server.ok()) return Die(server.status().message());
  for (const std::string& address : config.listen) {
    Status st = (*server)->Listen(address);
    if (!st.ok()) return Die(fmt::format("cannot listen on {}: {}", address, st.message()));
  }
  AdminServer admin(*registry);
  if (Status st = admin.Start(config.admin_socket); !st.ok()) return Die(st.message());
  if (Status st = (*server)->Start(); !st.ok()) return Die(st.message());

  spdlog::info("skerryd serving store {} (tls {})", config.store, nbd::TlsModeName(config.server.tls.mode));
  for (const std::string& a : (*server)->addresses()) spdlog::info("listening on {}", a);
  spdlog::info("admin socket {}", config.admin_socket);

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (config_path.empty()) {
        spdlog::info("SIGHUP: no config file to reload");
        continue;
      }
      DaemonConfig fresh;
      Status st = LoadConfigFile(config_path, &fresh);
      if (st.ok()) st = ApplyLogLevel(log_level.empty() ? fresh.log_level : log_level);
      if (!st.ok()) {
        spdlog::error("SIGHUP: config not reloaded: {}", st.message());
        continue;
      }
      if (fresh.store != config.store || fresh.listen != config.listen)
        spdlog::warn("SIGHUP: store and listen addresses change only on restart");
      spdlog::info("SIGHUP: reloaded {} (log level {})", config_path, spdlog::level::to_string_view(spdlog::get_level()));
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
