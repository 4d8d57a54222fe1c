#include "daemon/admin_client.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/steady_ms.h"

namespace skerry::admin {
namespace {

const std::pair<Code, const char*> kCodes[] = {
    {Code::kNotFound, "not_found"},   {Code::kAlreadyExists, "already_exists"},
    {Code::kInvalidArgument, "invalid"}, {Code::kCorruption, "corruption"},
    {Code::kIOError, "io_error"},     {Code::kNoSpace, "no_space"},
    {Code::kBusy, "busy"},            {Code::kConflict, "conflict"},
    {Code::kNotSupported, "not_supported"}, {Code::kTimedOut, "timed_out"},
    {Code::kReadOnly, "read_only"},
};

// How long the CLI waits for the daemon's answer, from connecting. A snapshot or resize
// through the daemon drains the volume's in-flight writes, flushes its map and rewrites its
// header: a few store operations after one another, each of which may wait out a Ceph OSD
// failover (20-30 s) and fails only after rados_osd_op_timeout (60 s); and the daemon serves
// one admin request at a time, so ours may wait behind another. 30 s would cut off a
// snapshot that succeeds during a failover (and the CLI would report a failure for a
// snapshot that then exists); 5 minutes covers several such steps and still ends the wait
// for a daemon that never answers. SKERRY_ADMIN_TIMEOUT (seconds) overrides it.
constexpr int64_t kDefaultAnswerTimeoutMs = 300'000;
// Connecting and sending the request, one line: these wait only on a daemon that is hung.
constexpr int64_t kSendTimeoutMs = 10'000;

Result<int64_t> ParseSeconds(const char* text) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < 1 || v > 86'400)
    return Status::InvalidArgument(fmt::format("SKERRY_ADMIN_TIMEOUT '{}' is not a number of seconds 1..86400", text));
  return static_cast<int64_t>(v);
}

}  // namespace

nlohmann::json ErrorJson(const Status& st) {
  std::string code = "io_error";
  for (auto& [c, n] : kCodes)
    if (c == st.code()) code = n;
  return {{"ok", false}, {"code", code}, {"error", st.message()}};
}

Status StatusFromJson(const nlohmann::json& j) {
  // Fields of the wrong type are read as absent: j.value() would throw on them.
  auto string_field = [&j](const char* key, const char* absent) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(absent);
  };
  auto ok = j.find("ok");
  if (ok != j.end() && ok->is_boolean() && ok->get<bool>()) return Status::OK();
  std::string code = string_field("code", "io_error"), msg = string_field("error", "the daemon reported an error");
  if (code == "not_found") return Status::NotFound(msg);
  if (code == "already_exists") return Status::AlreadyExists(msg);
  if (code == "invalid") return Status::InvalidArgument(msg);
  if (code == "corruption") return Status::Corruption(msg);
  if (code == "no_space") return Status::NoSpace(msg);
  if (code == "busy") return Status::Busy(msg);
  if (code == "conflict") return Status::Conflict(msg);
  if (code == "not_supported") return Status::NotSupported(msg);
  if (code == "timed_out") return Status::TimedOut(msg);
  if (code == "read_only") return Status::ReadOnly(msg);
  return Status::IOError(msg);
}

std::string AdminSocketOf(const std::string& owner) {
  size_t at = owner.find(" admin=");
  if (at == std::string::npos) return {};
  return owner.substr(at + 7);
}

Result<nlohmann::json> Call(const std::string& path, const nlohmann::json& request) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return Status::InvalidArgument("admin socket path too long: " + path);
  int64_t answer_timeout_ms = kDefaultAnswerTimeoutMs;
  if (const char* env = std::getenv("SKERRY_ADMIN_TIMEOUT"); env && *env) {
    auto seconds = ParseSeconds(env);
    if (!seconds.ok()) return seconds.status();
    answer_timeout_ms = *seconds * 1000;
  }
  int64_t deadline = SteadyMs() + answer_timeout_ms;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  // SO_SNDTIMEO bounds connect() too: it blocks while the daemon's listen backlog is full.
  int64_t send_ms = std::min(kSendTimeoutMs, answer_timeout_ms);
  timeval send_timeout{send_ms / 1000, static_cast<suseconds_t>(send_ms % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Status st = errno == EAGAIN ? Status::TimedOut(fmt::format("skerryd at {} took no connection within {} s "
                                                               "(its admin socket is busy or the daemon is hung)",
                                                               path, send_ms / 1000))
                                : Status::FromErrno(errno, "connect to skerryd at " + path);
    close(fd);
    return st;
  }
  std::string out = request.dump() + "\n";
  for (size_t done = 0; done < out.size();) {
    ssize_t n = write(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status st = Status::FromErrno(errno, "write to skerryd at " + path);
      close(fd);
      return st;
    }
    done += n;
  }
  std::string in;
  char buf[4096];
  for (;;) {
    int64_t left = deadline - SteadyMs();
    pollfd pfd{fd, POLLIN, 0};
    int ready = left > 0 ? poll(&pfd, 1, static_cast<int>(left)) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    if (ready == 0) {
      close(fd);
      return Status::TimedOut(fmt::format("skerryd at {} did not answer within {} s; the operation may still "
                                          "complete there (SKERRY_ADMIN_TIMEOUT sets the wait in seconds)",
                                          path, answer_timeout_ms / 1000));
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in.append(buf, n);
    if (in.find('\n') != std::string::npos || in.size() > (1 << 20)) break;
  }
  close(fd);
  auto answer = nlohmann::json::parse(in, nullptr, false);
  if (answer.is_discarded() || !answer.is_object())
    return Status::IOError(fmt::format("skerryd at {} sent an answer that is not JSON", path));
  if (!answer.contains("ok") || !answer["ok"].is_boolean())
    return Status::IOError(fmt::format("skerryd at {} sent an answer without \"ok\": true or false", path));
  SKERRY_RETURN_IF_ERROR(StatusFromJson(answer));
  return answer;
}

}  // namespace skerry::admin
