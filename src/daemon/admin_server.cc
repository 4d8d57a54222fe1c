#include "daemon/admin_server.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "daemon/admin_client.h"
#include "util/steady_ms.h"
#include "util/unix_socket.h"

namespace skerry::daemon {
namespace {

constexpr int64_t kRequestTimeoutMs = 5'000;
constexpr int64_t kAnswerTimeoutMs = 5'000;

// A message may quote the request's bytes, which need not be whole UTF-8 characters.
std::string Dump(const nlohmann::json& answer) {
  return answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Best effort (SO_SNDTIMEO bounds it): a client that went away gets no answer.
void WriteAnswer(int fd, const nlohmann::json& answer) {
  std::string out = Dump(answer) + "\n";
  for (size_t done = 0; done < out.size();) {
    ssize_t n = write(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += n;
  }
}

}  // namespace

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start(const std::string& path) {
  auto addr = UnixAddress(path);
  if (!addr.ok()) return addr.status().Prefixed("admin socket");
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  // A stale socket from a daemon that died is in the way; a live daemon answers connect(),
  // and whatever else is at the path is not ours to delete.
  SKERRY_RETURN_IF_ERROR(RemoveStaleSocket(path, *addr).Prefixed("admin socket"));
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Status::FromErrno(errno, "socket");
  mode_t old = umask(077);
  int rc = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  umask(old);
  if (rc != 0) return Status::FromErrno(errno, "bind admin socket " + path);
  path_ = path;  // from here Stop() removes the file
  if (listen(listen_fd_, 16) != 0) return Status::FromErrno(errno, "listen on admin socket " + path);
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void AdminServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (!path_.empty()) unlink(path_.c_str());
}

void AdminServer::Loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (stopping_.load()) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // One request at a time: admin operations are rare and each drains a volume anyway.
    // Nothing one request does may end the daemon that serves every volume.
    try {
      Serve(fd);
    } catch (const std::exception& e) {
      spdlog::error("admin: request failed: {}", e.what());
    }
    close(fd);
  }
}

void AdminServer::Serve(int fd) {
  timeval send_timeout{kAnswerTimeoutMs / 1000, 0};  // a client that takes no answer does not hold us up
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  // The whole request within kRequestTimeoutMs, not each read: one connection is served at
  // a time, and a client sending a byte every few seconds would otherwise hold the socket.
  int64_t deadline = SteadyMs() + kRequestTimeoutMs;
  std::string in;
  char buf[4096];
  bool timed_out = false;
  while (in.find('\n') == std::string::npos && in.size() < 65536) {
    int64_t left = deadline - SteadyMs();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    // The wake fd too: Stop() must not wait for a client.
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int ready = poll(fds, 2, static_cast<int>(left));
    if (ready < 0 && errno != EINTR) return;
    if (stopping_.load()) return;
    if (ready <= 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in.append(buf, n);
  }
  if (timed_out) {
    spdlog::warn("admin: a client sent no whole request within {} s; dropped", kRequestTimeoutMs / 1000);
    WriteAnswer(fd, admin::ErrorJson(Status::TimedOut(
                        fmt::format("no whole admin request within {} s", kRequestTimeoutMs / 1000))));
    return;
  }
  nlohmann::json answer;
  auto req = nlohmann::json::parse(in, nullptr, false);
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    answer = admin::ErrorJson(Status::InvalidArgument("admin request is not a JSON object with an \"op\""));
  } else {
    std::string op = req["op"];
    try {
      // Which volume: a name, and what the CLI found in its store (the id, the lock's owner).
      auto target = [&] {
        return ExportRegistry::Target{req.at("volume").get<std::string>(), req.value("volume_id", std::string()),
                                      req.value("lock_owner", std::string())};
      };
      if (op == "snap_create") {
        Status st = registry_.Snapshot(target(), req.at("snap").get<std::string>());
        answer = st.ok() ? nlohmann::json{{"ok", true}} : admin::ErrorJson(st);
      } else if (op == "resize") {
        // get<uint64_t> would take -1 as 2^64-1 and 134217728.5 as 134217728.
        const nlohmann::json& size = req.at("size");
        Status st = size.is_number_unsigned()
                        ? registry_.Resize(target(), size.get<uint64_t>(), req.value("allow_shrink", false))
                        : Status::InvalidArgument("resize: \"size\" must be a whole number of bytes, not " +
                                                  Dump(size));
        answer = st.ok() ? nlohmann::json{{"ok", true}} : admin::ErrorJson(st);
      } else if (op == "status") {
        nlohmann::json exports = nlohmann::json::array();
        for (const ExportStatus& e : registry_.Exports())
          exports.push_back({{"name", e.name}, {"clients", e.clients}, {"read_only", e.read_only}, {"size", e.size},
                             {"role", VolumeRoleName(e.role)}});
        answer = {{"ok", true}, {"exports", exports}};
      } else {
        answer = admin::ErrorJson(Status::InvalidArgument("unknown admin op '" + op + "'"));
      }
    } catch (const nlohmann::json::exception& e) {
      answer = admin::ErrorJson(Status::InvalidArgument(std::string("bad admin request: ") + e.what()));
    }
  }
  spdlog::debug("admin: {} -> {}", in.substr(0, in.find('\n')), Dump(answer));
  WriteAnswer(fd, answer);
}

}  // namespace skerry::daemon
