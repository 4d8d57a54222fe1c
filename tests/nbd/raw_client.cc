#include "raw_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "nbd/protocol.h"

namespace skerry::nbd::testing {
namespace {
constexpr int kTimeoutMs = 10'000;
}

RawClient::RawClient(int fd) : fd_(fd) {}
RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::optional<std::string> RawClient::Recv(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kTimeoutMs) <= 0) return std::nullopt;
    ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    got += static_cast<size_t>(r);
  }
  return out;
}

bool RawClient::WaitForEof() {
  char buf[4096];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kTimeoutMs) <= 0) return false;
    ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r == 0) return true;
    if (r < 0) return errno == ECONNRESET;
  }
}

std::optional<uint16_t> RawClient::ReadGreeting() {
  auto g = Recv(18);
  if (!g || GetBe64(g->data()) != kInitMagic || GetBe64(g->data() + 8) != kOptionMagic) {
    return std::nullopt;
  }
  return GetBe16(g->data() + 16);
}

bool RawClient::SendClientFlags(uint32_t flags) {
  char b[4];
  PutBe32(b, flags);
  return Send(std::string_view(b, 4));
}

bool RawClient::SendOptionHeader(uint32_t option, uint32_t length) {
  char h[16];
  PutBe64(h, kOptionMagic);
  PutBe32(h + 8, option);
  PutBe32(h + 12, length);
  return Send(std::string_view(h, 16));
}

bool RawClient::SendOption(uint32_t option, std::string_view data) {
  return SendOptionHeader(option, static_cast<uint32_t>(data.size())) && Send(data);
}

std::optional<OptionReply> RawClient::ReadOptionReply() {
  auto h = Recv(20);
  if (!h || GetBe64(h->data()) != kOptionReplyMagic) return std::nullopt;
  OptionReply r;
  r.option = GetBe32(h->data() + 8);
  r.type = GetBe32(h->data() + 12);
  uint32_t len = GetBe32(h->data() + 16);
  auto data = Recv(len);
  if (!data) return std::nullopt;
  r.data = std::move(*data);
  return r;
}

std::string RawClient::InfoData(std::string_view name, const std::vector<uint16_t>& requests) {
  std::string d(4, '\0');
  PutBe32(d.data(), static_cast<uint32_t>(name.size()));
  d += name;
  char b[2];
  PutBe16(b, static_cast<uint16_t>(requests.size()));
  d.append(b, 2);
  for (uint16_t r : requests) {
    PutBe16(b, r);
    d.append(b, 2);
  }
  return d;
}

std::string RawClient::MetaData(std::string_view name, const std::vector<std::string>& queries) {
  std::string d;
  char b[4];
  PutBe32(b, static_cast<uint32_t>(name.size()));
  d.append(b, 4);
  d += name;
  PutBe32(b, static_cast<uint32_t>(queries.size()));
  d.append(b, 4);
  for (const std::string& q : queries) {
    PutBe32(b, static_cast<uint32_t>(q.size()));
    d.append(b, 4);
    d += q;
  }
  return d;
}

std::optional<RawClient::Negotiated> RawClient::Negotiate(std::string_view name, bool structured,
                                                          bool meta) {
  if (!ReadGreeting()) return std::nullopt;
  if (!SendClientFlags(kClientFlagFixedNewstyle | kClientFlagNoZeroes)) return std::nullopt;
  if (structured) {
    if (!SendOption(kOptStructuredReply, "")) return std::nullopt;
    auto r = ReadOptionReply();
    if (!r || r->type != kRepAck) return std::nullopt;
  }
  if (meta) {
    if (!SendOption(kOptSetMetaContext, MetaData(name, {kBaseAllocation}))) return std::nullopt;
    for (;;) {
      auto r = ReadOptionReply();
      if (!r) return std::nullopt;
      if (r->type == kRepAck) break;
      if (r->type != kRepMetaContext) return std::nullopt;
    }
  }
  if (!SendOption(kOptGo, InfoData(name))) return std::nullopt;
  Negotiated n;
  for (;;) {
    auto r = ReadOptionReply();
    if (!r) return std::nullopt;
    if (r->type == kRepAck) return n;
    if (r->type != kRepInfo) return std::nullopt;
    if (GetBe16(r->data.data()) == kInfoExport) {
      n.size = GetBe64(r->data.data() + 2);
      n.flags = GetBe16(r->data.data() + 10);
    }
  }
}

bool RawClient::SendRequest(uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset,
                            uint32_t length, std::string_view payload) {
  char h[28];
  PutBe32(h, kRequestMagic);
  PutBe16(h + 4, flags);
  PutBe16(h + 6, type);
  PutBe64(h + 8, cookie);
  PutBe64(h + 16, offset);
  PutBe32(h + 24, length);
  return Send(std::string_view(h, 28)) && Send(payload);
}

std::optional<ReplyMessage> RawClient::ReadReply(uint32_t simple_read_length) {
  auto magic = Recv(4);
  if (!magic) return std::nullopt;
  ReplyMessage m;
  if (GetBe32(magic->data()) == kSimpleReplyMagic) {
    auto rest = Recv(12);
    if (!rest) return std::nullopt;
    m.error = GetBe32(rest->data());
    m.cookie = GetBe64(rest->data() + 4);
    if (m.error == 0 && simple_read_length > 0) {
      auto data = Recv(simple_read_length);
      if (!data) return std::nullopt;
      m.payload = std::move(*data);
    }
    return m;
  }
  if (GetBe32(magic->data()) != kStructuredReplyMagic) return std::nullopt;
  auto rest = Recv(16);
  if (!rest) return std::nullopt;
  m.structured = true;
  m.flags = GetBe16(rest->data());
  m.type = GetBe16(rest->data() + 2);
  m.cookie = GetBe64(rest->data() + 4);
  uint32_t len = GetBe32(rest->data() + 12);
  auto payload = Recv(len);
  if (!payload) return std::nullopt;
  m.payload = std::move(*payload);
  if (m.type == kReplyTypeError || m.type == kReplyTypeErrorOffset)
    m.error = GetBe32(m.payload.data());
  return m;
}

}  // namespace skerry::nbd::testing
