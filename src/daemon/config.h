// DaemonConfig: everything skerryd is told, from a TOML file and command-line flags
// (flags win). docs/operations.md lists every setting.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "nbd/server.h"
#include "skerry/status.h"
#include "skerry/volume.h"

namespace skerry::daemon {

struct DaemonConfig {
  std::string store;                  // store URI, required
  std::vector<std::string> listen;    // "unix:PATH" / "tcp:HOST:PORT"
  std::string admin_socket;           // Unix socket for `skerry` operations on open volumes
  std::string log_level = "info";     // trace, debug, info, warn, error
  int64_t lock_lease_ms = 60'000;     // write-lock lease of open volumes
  // Cooperative opens (standby and handoff, for live migration) or exclusive ones.
  bool handoff = true;
  // The file this daemon holds locked while it runs (daemon/identity.h); empty: the admin
  // socket's path with ".state" appended.
  std::string state_file;
  // How open volumes copy shared blocks (copy_up, copier_threads, partial_blocks); the lease
  // is lock_lease_ms above.
  VolumeOptions volumes;
  nbd::ServerOptions server;          // workers, connection limits, TLS
};

inline constexpr const char* kDefaultTcpListen = "tcp:127.0.0.1:10809";
inline constexpr const char* kDefaultUnixListen = "unix:/run/skerry/nbd.sock";
inline constexpr const char* kDefaultAdminSocket = "/run/skerry/admin.sock";
// busy_poll_us above this would keep a core spinning for a client that is not coming back.
inline constexpr int64_t kMaxBusyPollUs = 1000;

// The value of max_inflight_memory ("1G", "512M", "0" for off): at least one maximal
// request's worth (64M) unless 0. InvalidArgument naming the setting otherwise.
Result<uint64_t> ParseInflightMemory(std::string_view text);

// The admin socket path as the daemon uses it: absolute, since it goes into the lock owner
// of every volume the daemon opens and the CLI connects to it from its own working
// directory. InvalidArgument if it has a control character: a lock owner is one line.
Result<std::string> AdminSocketPath(const std::string& path);

// Reads a TOML config file into `config` (only the keys present change it). Unknown keys
// are errors, so a typo never silently does nothing. The path must name a regular file.
Status LoadConfigFile(const std::string& path, DaemonConfig* config);
// The same from text; `source` names it in messages (a path, or "<fuzz>").
Status LoadConfigText(std::string_view text, const std::string& source, DaemonConfig* config);

}  // namespace skerry::daemon
