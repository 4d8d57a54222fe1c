#include "daemon/admin_client.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

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

}  // namespace

nlohmann::json ErrorJson(const Status& st) {
  std::string code = "io_error";
  for (auto& [c, n] : kCodes)
    if (c == st.code()) code = n;
  return {{"ok", false}, {"code", code}, {"error", st.message()}};
}

Status StatusFromJson(const nlohmann::json& j) {
  if (j.value("ok", false)) return Status::OK();
  std::string code = j.value("code", "io_error"), msg = j.value("error", "the daemon reported an error");
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
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Status st = Status::FromErrno(errno, "connect to skerryd at " + path);
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
  SKERRY_RETURN_IF_ERROR(StatusFromJson(answer));
  return answer;
}

}  // namespace skerry::admin
