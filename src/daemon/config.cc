#include "daemon/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>
#include <type_traits>
#include <toml++/toml.h>

#include "util/sizes.h"

namespace skerry::daemon {
namespace {

Status Unknown(const std::string& path, const toml::table& t, const std::set<std::string>& known,
               const std::string& section) {
  for (auto& [key, _] : t) {
    std::string k(key.str());
    if (!known.count(k))
      return Status::InvalidArgument(fmt::format("{}: unknown setting '{}{}'", path, section, k));
  }
  return Status::OK();
}

template <class T>
Status Get(const std::string& path, const toml::table& t, const char* key, T* out) {
  const toml::node* n = t.get(key);
  if (!n) return Status::OK();
  // Integers only from integers: toml++ would convert a float such as 1e84 to int64_t
  // unchecked (undefined behaviour; config_fuzz found it).
  if constexpr (std::is_integral_v<T>) {
    if (!n->is_integer())
      return Status::InvalidArgument(fmt::format("{}: '{}' must be a whole number", path, key));
  }
  auto v = n->value<T>();
  if (!v) return Status::InvalidArgument(fmt::format("{}: '{}' has the wrong type", path, key));
  *out = *v;
  return Status::OK();
}

}  // namespace

Status LoadConfigFile(const std::string& path, DaemonConfig* config) {
  // Not std::ifstream: it opens a directory, reads nothing and reports no error, which
  // made `--config DIR` an empty config.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  std::string text;
  Status st;
  struct stat info;
  if (fstat(fd, &info) != 0) {
    st = Status::FromErrno(errno, "stat " + path);
  } else if (!S_ISREG(info.st_mode)) {
    st = Status::InvalidArgument(fmt::format("{} is not a regular file", path));
  } else {
    char buf[65536];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) st = Status::FromErrno(errno, "read " + path);
      if (n <= 0) break;
      text.append(buf, n);
    }
  }
  close(fd);
  if (!st.ok()) return st;
  return LoadConfigText(text, path, config);
}

Result<std::string> AdminSocketPath(const std::string& path) {
  for (unsigned char c : path)
    if (c < 0x20 || c == 0x7f)
      return Status::InvalidArgument("admin_socket must not contain control characters (such as a newline)");
  if (path.empty()) return path;
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) return Status::FromErrno(ec.value(), "admin_socket " + path);
  return absolute.string();
}

Result<uint64_t> ParseInflightMemory(std::string_view text) {
  auto bytes = ParseSize(text);
  if (!bytes.ok()) return bytes.status().Prefixed("max_inflight_memory");
  // At least one maximal request (32 MiB payload) with room; 0 turns the bound off.
  if (*bytes != 0 && *bytes < (64u << 20))
    return Status::InvalidArgument("max_inflight_memory must be 0 (off) or at least 64M");
  return *bytes;
}

Status LoadConfigText(std::string_view text, const std::string& path, DaemonConfig* config) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column,
                                               std::string(e.description())));
  }
  SKERRY_RETURN_IF_ERROR(Unknown(path, root,
                                 {"store", "listen", "admin_socket", "log_level", "lock_lease_seconds", "workers",
                                  "max_connections", "max_inflight_memory", "stall_timeout_seconds", "busy_poll_us",
                                  "copy_up", "copier_threads", "partial_blocks", "handoff", "state_file", "tls"},
                                 ""));
  SKERRY_RETURN_IF_ERROR(Get(path, root, "store", &config->store));
  SKERRY_RETURN_IF_ERROR(Get(path, root, "admin_socket", &config->admin_socket));
  auto admin_socket = AdminSocketPath(config->admin_socket);
  if (!admin_socket.ok()) return admin_socket.status().Prefixed(path);
  config->admin_socket = *admin_socket;
  SKERRY_RETURN_IF_ERROR(Get(path, root, "log_level", &config->log_level));
  if (const toml::node* n = root.get("listen")) {
    const toml::array* arr = n->as_array();
    if (!arr) return Status::InvalidArgument(fmt::format("{}: 'listen' must be a list of addresses", path));
    config->listen.clear();
    for (const toml::node& item : *arr) {
      auto s = item.value<std::string>();
      if (!s) return Status::InvalidArgument(fmt::format("{}: 'listen' entries must be strings", path));
      config->listen.push_back(*s);
    }
  }
  int64_t lease_s = config->lock_lease_ms / 1000, workers = static_cast<int64_t>(config->server.worker_threads),
          max_conn = static_cast<int64_t>(config->server.max_connections),
          stall_s = config->server.limits.stall_timeout.count() / 1000,
          busy_poll_us = static_cast<int64_t>(config->server.limits.busy_poll_ns / 1000);
  SKERRY_RETURN_IF_ERROR(Get(path, root, "lock_lease_seconds", &lease_s));
  SKERRY_RETURN_IF_ERROR(Get(path, root, "workers", &workers));
  SKERRY_RETURN_IF_ERROR(Get(path, root, "max_connections", &max_conn));
  SKERRY_RETURN_IF_ERROR(Get(path, root, "stall_timeout_seconds", &stall_s));
  SKERRY_RETURN_IF_ERROR(Get(path, root, "busy_poll_us", &busy_poll_us));
  if (lease_s < 3 || lease_s > 3600) return Status::InvalidArgument(fmt::format("{}: lock_lease_seconds must be 3..3600", path));
  if (workers < 1 || workers > 1024) return Status::InvalidArgument(fmt::format("{}: workers must be 1..1024", path));
  if (max_conn < 1) return Status::InvalidArgument(fmt::format("{}: max_connections must be at least 1", path));
  if (stall_s < 1 || stall_s > 3600)
    return Status::InvalidArgument(fmt::format("{}: stall_timeout_seconds must be 1..3600", path));
  if (busy_poll_us < 0 || busy_poll_us > kMaxBusyPollUs)
    return Status::InvalidArgument(fmt::format("{}: busy_poll_us must be 0..{}", path, kMaxBusyPollUs));
  config->lock_lease_ms = lease_s * 1000;
  if (const toml::node* n = root.get("copy_up")) {
    auto text = n->value<std::string>();
    if (!text) return Status::InvalidArgument(fmt::format("{}: copy_up must be a string", path));
    auto mode = ParseCopyUpMode(*text);
    if (!mode.ok()) return mode.status().Prefixed(path);
    config->volumes.copy_up = *mode;
  }
  int64_t copiers = config->volumes.copier_threads;
  SKERRY_RETURN_IF_ERROR(Get(path, root, "copier_threads", &copiers));
  if (copiers < 1 || copiers > 64) return Status::InvalidArgument(fmt::format("{}: copier_threads must be 1..64", path));
  config->volumes.copier_threads = static_cast<int>(copiers);
  if (const toml::node* n = root.get("partial_blocks")) {
    auto on = n->value<bool>();
    if (!on) return Status::InvalidArgument(fmt::format("{}: partial_blocks must be true or false", path));
    config->volumes.partial_blocks = *on;
  }
  if (const toml::node* n = root.get("handoff")) {
    auto on = n->value<bool>();
    if (!on) return Status::InvalidArgument(fmt::format("{}: handoff must be true or false", path));
    config->handoff = *on;
  }
  SKERRY_RETURN_IF_ERROR(Get(path, root, "state_file", &config->state_file));
  if (config->state_file.find_first_of("\n\r") != std::string::npos)
    return Status::InvalidArgument(fmt::format("{}: state_file must be one line", path));
  config->server.worker_threads = static_cast<size_t>(workers);
  config->server.max_connections = static_cast<size_t>(max_conn);
  config->server.limits.stall_timeout = std::chrono::seconds(stall_s);
  config->server.limits.busy_poll_ns = static_cast<uint64_t>(busy_poll_us) * 1000;
  if (const toml::node* n = root.get("max_inflight_memory")) {
    auto text = n->value<std::string>();
    if (!text) return Status::InvalidArgument(fmt::format("{}: max_inflight_memory must be a size such as \"1G\"", path));
    auto bytes = ParseInflightMemory(*text);
    if (!bytes.ok()) return bytes.status().Prefixed(path);
    config->server.max_inflight_memory = *bytes;
  }
  if (const toml::node* n = root.get("tls")) {
    const toml::table* tls = n->as_table();
    if (!tls) return Status::InvalidArgument(fmt::format("{}: [tls] must be a table", path));
    SKERRY_RETURN_IF_ERROR(Unknown(path, *tls, {"mode", "cert", "key", "client_ca", "psk_file", "priority"}, "tls."));
    std::string mode = nbd::TlsModeName(config->server.tls.mode);
    SKERRY_RETURN_IF_ERROR(Get(path, *tls, "mode", &mode));
    auto parsed = nbd::ParseTlsMode(mode);
    if (!parsed.ok()) return parsed.status().Prefixed(path);
    config->server.tls.mode = *parsed;
    SKERRY_RETURN_IF_ERROR(Get(path, *tls, "cert", &config->server.tls.cert_file));
    SKERRY_RETURN_IF_ERROR(Get(path, *tls, "key", &config->server.tls.key_file));
    SKERRY_RETURN_IF_ERROR(Get(path, *tls, "client_ca", &config->server.tls.client_ca_file));
    SKERRY_RETURN_IF_ERROR(Get(path, *tls, "psk_file", &config->server.tls.psk_file));
    SKERRY_RETURN_IF_ERROR(Get(path, *tls, "priority", &config->server.tls.priority));
  }
  return Status::OK();
}

}  // namespace skerry::daemon
