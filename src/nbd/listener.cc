#include "nbd/listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "util/unix_socket.h"

namespace skerry::nbd {
namespace {

constexpr int kBacklog = 128;

std::string FormatSockaddr(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

}  // namespace

Listener::~Listener() { Close(); }

void Listener::Close() {
  if (!fd_.valid()) return;
  fd_.Reset();
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

Result<std::vector<Listener>> Listener::Bind(std::string_view address) {
  std::vector<Listener> out;
  if (address.starts_with("unix:")) {
    std::string path(address.substr(5));
    SKERRY_ASSIGN_OR_RETURN(sockaddr_un sun, UnixAddress(path));
    SKERRY_RETURN_IF_ERROR(RemoveStaleSocket(path, sun));
    Listener l;
    l.fd_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!l.fd_.valid()) return Status::FromErrno(errno, "socket");
    if (::bind(l.fd_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
      return Status::FromErrno(errno, "bind " + path);
    }
    l.unix_path_ = path;  // from here Close() removes the file
    if (::listen(l.fd_.get(), kBacklog) != 0) return Status::FromErrno(errno, "listen " + path);
    l.address_ = "unix:" + path;
    out.push_back(std::move(l));
    return out;
  }

  if (!address.starts_with("tcp:")) {
    return Status::InvalidArgument("listen address must be unix:PATH or tcp:HOST:PORT, not '" +
                                   std::string(address) + "'");
  }
  std::string_view rest = address.substr(4);
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument("tcp address needs a port: '" + std::string(address) + "'");
  }
  std::string host(rest.substr(0, colon));
  std::string port(rest.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "*") host.clear();

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* results = nullptr;
  int r = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &results);
  if (r != 0) {
    return Status::InvalidArgument("cannot resolve '" + std::string(address) +
                                   "': " + gai_strerror(r));
  }
  Status last_error = Status::InvalidArgument("no address for '" + std::string(address) + "'");
  std::string chosen_port = port;
  for (addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
    Listener l;
    l.fd_.Reset(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!l.fd_.valid()) {
      last_error = Status::FromErrno(errno, "socket");
      continue;
    }
    int one = 1;
    ::setsockopt(l.fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // One socket per family, so "::" and "0.0.0.0" do not fight over the port.
    if (ai->ai_family == AF_INET6)
      ::setsockopt(l.fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    // With port 0, the later families reuse the port the first one got.
    if (chosen_port != port) {
      uint16_t p = htons(static_cast<uint16_t>(std::stoi(chosen_port)));
      if (ai->ai_family == AF_INET) reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_port = p;
      if (ai->ai_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_port = p;
    }
    if (::bind(l.fd_.get(), ai->ai_addr, ai->ai_addrlen) != 0 ||
        ::listen(l.fd_.get(), kBacklog) != 0) {
      last_error = Status::FromErrno(errno, "bind " + FormatSockaddr(ai->ai_addr));
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(l.fd_.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    l.address_ = "tcp:" + FormatSockaddr(reinterpret_cast<sockaddr*>(&bound));
    if (port == "0" && chosen_port == port)
      chosen_port = l.address_.substr(l.address_.rfind(':') + 1);
    out.push_back(std::move(l));
  }
  ::freeaddrinfo(results);
  if (out.empty()) return last_error;
  return out;
}

Result<AcceptedSocket> Listener::Accept() {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  int fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "accept on " + address_);
  AcceptedSocket accepted{UniqueFd(fd), ""};
  if (addr.ss_family == AF_UNIX) {
    ucred cred{};
    socklen_t cred_len = sizeof cred;
    accepted.peer = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0
                        ? "unix pid " + std::to_string(cred.pid)
                        : "unix";
  } else {
    // Requests and replies are small and latency-bound: never wait to fill a segment.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    accepted.peer = "tcp " + FormatSockaddr(reinterpret_cast<sockaddr*>(&addr));
  }
  return accepted;
}

}  // namespace skerry::nbd
