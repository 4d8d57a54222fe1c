#include "daemon/identity.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <sstream>
#include <vector>

namespace skerry::daemon {
namespace {

// How many earlier instances' tokens the file keeps: a daemon that crash-loops before it took
// its volumes back still leaves the first dead instance's token findable.
constexpr size_t kKeptTokens = 64;

Result<std::string> NewToken() {
  unsigned char raw[12];
  if (getrandom(raw, sizeof(raw), 0) != static_cast<ssize_t>(sizeof(raw))) return Status::FromErrno(errno, "getrandom");
  std::string hex;
  for (unsigned char c : raw) hex += fmt::format("{:02x}", c);
  return hex;
}

}  // namespace

std::string OwnerToken(const std::string& owner) {
  size_t at = owner.find(" token=");
  if (at == std::string::npos) return {};
  at += 7;
  size_t end = owner.find(' ', at);
  return owner.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

Result<std::unique_ptr<DaemonIdentity>> DaemonIdentity::Acquire(const std::string& state_file,
                                                                const std::string& admin_socket) {
  std::unique_ptr<DaemonIdentity> id(new DaemonIdentity());
  std::error_code ec;  // as the admin socket's: the open below reports what matters
  std::filesystem::create_directories(std::filesystem::path(state_file).parent_path(), ec);
  id->fd_.Reset(open(state_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (id->fd_.get() < 0) return Status::FromErrno(errno, "open state file " + state_file);
  if (flock(id->fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return Status::Busy(fmt::format("state file {} is locked: another skerryd runs with it (the same admin socket)",
                                      state_file));
    return Status::FromErrno(errno, "flock " + state_file);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = pread(id->fd_.get(), buf, sizeof(buf), static_cast<off_t>(text.size()));
    if (n < 0) return Status::FromErrno(errno, "read state file " + state_file);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (1u << 20)) return Status::Corruption(fmt::format("state file {} is too large", state_file));
  }
  std::vector<std::string> tokens;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    // Lines are "token T"; anything else (a torn write) is skipped, never trusted.
    if (line.rfind("token ", 0) != 0 || line.size() != 6 + 24) continue;
    std::string t = line.substr(6);
    if (t.find_first_not_of("0123456789abcdef") != std::string::npos) continue;
    tokens.push_back(t);
    id->predecessors_.insert(t);
  }
  SKERRY_ASSIGN_OR_RETURN(std::string mine, NewToken());
  tokens.push_back(mine);
  if (tokens.size() > kKeptTokens) tokens.erase(tokens.begin(), tokens.end() - kKeptTokens);
  std::string out;
  for (const std::string& t : tokens) out += "token " + t + "\n";
  // Rewritten in place and synced: the token must be on disk before any lock names it, or a
  // crash then a restart would not know its predecessor.
  if (ftruncate(id->fd_.get(), 0) != 0) return Status::FromErrno(errno, "truncate state file " + state_file);
  if (pwrite(id->fd_.get(), out.data(), out.size(), 0) != static_cast<ssize_t>(out.size()))
    return Status::FromErrno(errno, "write state file " + state_file);
  if (fsync(id->fd_.get()) != 0) return Status::FromErrno(errno, "fsync state file " + state_file);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  // admin= stays last: the CLI takes the rest of the string as the socket path.
  id->owner_ = fmt::format("skerryd@{}:{} token={} admin={}", host, getpid(), mine, admin_socket);
  return id;
}

bool DaemonIdentity::IsPredecessor(const std::string& owner) const {
  std::string token = OwnerToken(owner);
  return !token.empty() && predecessors_.count(token) > 0;
}

}  // namespace skerry::daemon
