// Fuzzes the NBD handshake (src/nbd/handshake.cc): the input is everything a client
// sends after the server's greeting (client flags, then options), played to the
// real Handshake through an in-memory transport (nbd_fuzz.h) over an in-memory
// export provider ("disk", writable; "disk@gold", read-only). The end of the input
// is the client closing its side, so every session ends.
//
// The first input byte is not sent: it picks the server's TLS mode (none, optional,
// required: STARTTLS then fails on a socket whose client is gone), how the client's
// bytes are split into reads, and whether the client vanishes after some output
// (nbd_fuzz.h).
//
// Beyond crashes, leaks and sanitizer reports, each session is checked:
//  * what the server wrote is the greeting, then option replies in order, each
//    naming the option it answers, ACK or an error last, then (after EXPORT_NAME)
//    the export's size and flags; never a reply to an option not sent;
//  * a returned export comes after GO's ACK or EXPORT_NAME's reply, and every
//    export opened during the session is released (by Handshake, or by us for the
//    one it hands over, as Connection does).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mem_export_provider.h"
#include "mem_volume.h"
#include "nbd/handshake.h"
#include "nbd/protocol.h"
#include "nbd/tls.h"
#include "nbd_fuzz.h"

using namespace skerry;
using namespace skerry::nbd;
using skerry::nbd::fuzz::MemTransport;

namespace {

struct Env {
  testing::MemExportProvider provider;
  std::shared_ptr<TlsContext> tls_optional;
  std::shared_ptr<TlsContext> tls_required;
  int dead_fd = -1;  // a socket whose other end is closed: where STARTTLS's TLS handshake runs
};
Env* env = nullptr;

constexpr uint64_t kDiskSize = 1 << 20;     // "disk"
constexpr uint64_t kGoldSize = 256 * 1024;  // "disk@gold", read-only

[[noreturn]] void Fail(const char* what, size_t at) {
  std::fprintf(stderr, "nbd_handshake_fuzz: %s (at output byte %zu)\n", what, at);
  std::abort();
}

std::shared_ptr<TlsContext> MakeTls(TlsMode mode, const std::string& psk_file) {
  TlsOptions options;
  options.mode = mode;
  options.psk_file = psk_file;
  auto ctx = TlsContext::Create(options);
  if (!ctx.ok()) {
    std::fprintf(stderr, "nbd_handshake_fuzz: TLS setup: %s\n", ctx.status().ToString().c_str());
    std::abort();
  }
  return *ctx;
}

struct ClientOption {
  uint32_t option;
  std::string_view data;
};

// The options the client sent completely, in order, as the server frames them;
// framing stops where the server would hang up (bad magic, oversized option).
std::vector<ClientOption> ClientOptions(std::string_view in) {
  std::vector<ClientOption> options;
  if (in.size() < 4) return options;
  size_t pos = 4;
  while (in.size() - pos >= kOptionHeaderSize) {
    const char* h = in.data() + pos;
    if (GetBe64(h) != kOptionMagic) break;
    uint32_t length = GetBe32(h + 12);
    if (length > kMaxOptionLength || length > in.size() - pos - kOptionHeaderSize) break;
    options.push_back({GetBe32(h + 8), in.substr(pos + kOptionHeaderSize, length)});
    pos += kOptionHeaderSize + length;
  }
  return options;
}

// Checks the server's output against the client's options; returns whether it
// ended by handing over an export (GO's ACK or EXPORT_NAME's reply).
bool CheckOutput(const std::string& out, std::string_view in, size_t cut) {
  if (out.size() < 18) {
    if (!out.empty() || cut >= 18) Fail("greeting missing or short", 0);
    return false;
  }
  if (GetBe64(out.data()) != kInitMagic || GetBe64(out.data() + 8) != kOptionMagic ||
      GetBe16(out.data() + 16) != (kFlagFixedNewstyle | kFlagNoZeroes)) {
    Fail("bad greeting", 0);
  }
  bool no_zeroes = in.size() >= 4 && (GetBe32(in.data()) & kClientFlagNoZeroes);
  std::vector<ClientOption> options = ClientOptions(in);
  size_t pos = 18, index = 0;
  while (pos < out.size()) {
    if (index >= options.size()) Fail("reply to an option the client never sent", pos);
    uint32_t option = options[index].option;
    size_t left = out.size() - pos;
    if (option == kOptExportName) {
      // Only an export that opened is answered: size, flags, maybe 124 zeroes.
      std::string_view name = options[index].data;
      if (name != "disk" && name != "disk@gold")
        Fail("EXPORT_NAME of an unknown export answered", pos);
      if (left != (no_zeroes ? 10u : 134u)) Fail("EXPORT_NAME reply of the wrong size", pos);
      if (GetBe64(out.data() + pos) != (name == "disk" ? kDiskSize : kGoldSize)) {
        Fail("EXPORT_NAME: wrong export size", pos);
      }
      uint16_t flags = GetBe16(out.data() + pos + 8);
      if (!(flags & kTxHasFlags) || bool(flags & kTxReadOnly) != (name == "disk@gold")) {
        Fail("EXPORT_NAME: wrong transmission flags", pos);
      }
      if (out.find_first_not_of('\0', pos + 10) != std::string::npos)
        Fail("EXPORT_NAME: padding not zero", pos);
      return true;
    }
    if (left < kOptionReplyHeaderSize) Fail("truncated option reply header", pos);
    const char* h = out.data() + pos;
    if (GetBe64(h) != kOptionReplyMagic) Fail("bad option reply magic", pos);
    if (GetBe32(h + 8) != option) Fail("reply names another option", pos);
    uint32_t type = GetBe32(h + 12);
    uint32_t length = GetBe32(h + 16);
    if (length > left - kOptionReplyHeaderSize) Fail("option reply longer than what was sent", pos);
    pos += kOptionReplyHeaderSize + length;
    if (type == kRepAck || (type & kRepErrBit)) {
      ++index;
      if (option == kOptGo && type == kRepAck) {
        if (pos != out.size()) Fail("output after GO's ACK", pos);
        return true;
      }
      continue;
    }
    bool fits = (type == kRepServer && option == kOptList) ||
                (type == kRepInfo && (option == kOptInfo || option == kOptGo)) ||
                (type == kRepMetaContext &&
                 (option == kOptListMetaContext || option == kOptSetMetaContext));
    if (!fits) Fail("reply type does not fit the option", pos);
    if (type == kRepInfo) {
      // NBD_INFO_EXPORT must describe the export the option named.
      if (length < 2) Fail("empty NBD_REP_INFO", pos);
      const char* item = out.data() + pos - length;
      if (GetBe16(item) == kInfoExport) {
        std::string_view d = options[index].data;
        if (d.size() < 4 || GetBe32(d.data()) > d.size() - 4)
          Fail("INFO answered for bad data", pos);
        std::string_view name = d.substr(4, GetBe32(d.data()));
        if (length != 12) Fail("NBD_INFO_EXPORT of the wrong length", pos);
        if (GetBe64(item + 2) != (name == "disk" ? kDiskSize : kGoldSize)) {
          Fail("NBD_INFO_EXPORT: wrong export size", pos);
        }
      }
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  ::signal(SIGPIPE, SIG_IGN);
  env = new Env;
  env->provider.Add(std::make_shared<testing::MemVolume>("disk", kDiskSize));
  env->provider.Add(std::make_shared<testing::MemVolume>("disk@gold", kGoldSize, 64 * 1024,
                                                         /*read_only=*/true));
  char path[] = "/tmp/nbd_handshake_fuzz.psk.XXXXXX";
  int fd = ::mkstemp(path);
  const char key[] = "fuzz:00112233445566778899aabbccddeeff\n";
  if (fd < 0 || ::write(fd, key, sizeof key - 1) != static_cast<ssize_t>(sizeof key - 1)) {
    std::perror("nbd_handshake_fuzz: PSK file");
    std::abort();
  }
  ::close(fd);
  env->tls_optional = MakeTls(TlsMode::kOptional, path);
  env->tls_required = MakeTls(TlsMode::kRequired, path);
  ::unlink(path);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  ::close(fds[1]);
  env->dead_fd = fds[0];
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t config = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  static constexpr size_t kChunks[4] = {0, 1, 3, 17};
  size_t chunk = kChunks[(config >> 2) & 3];
  size_t cut_code = config >> 4;
  size_t cut = cut_code == 0 ? SIZE_MAX : (cut_code - 1) * 24;
  const TlsContext* tls = nullptr;
  if ((config & 3) == fuzz::kHsTlsOptional) tls = env->tls_optional.get();
  if ((config & 3) == fuzz::kHsTlsRequired) tls = env->tls_required.get();

  std::string out;
  std::unique_ptr<Transport> transport = std::make_unique<MemTransport>(
      in, chunk, cut, [&out](const char* p, size_t n) { out.append(p, n); });
  HandshakeConfig config_{&env->provider, tls, std::chrono::milliseconds(1000)};
  uint64_t opens = env->provider.opens(), releases = env->provider.releases();

  Result<NegotiatedExport> result = [&] {
    Handshake handshake(transport, env->dead_fd, config_, "fuzz");
    return handshake.Run();
  }();
  bool handed_over = CheckOutput(out, in, cut);

  if (result.ok() && result->volume) {
    if (!handed_over) Fail("export returned without GO's ACK or EXPORT_NAME's reply", out.size());
    if (result->size != result->volume->size())
      Fail("negotiated size differs from the volume's", 0);
    env->provider.ReleaseExport(result->name, result->volume);
  } else if (handed_over) {
    Fail("export handed over to the client, but not to the caller", out.size());
  }
  if (env->provider.opens() - opens != env->provider.releases() - releases) {
    Fail("an export opened during the handshake was not released", out.size());
  }
  return 0;
}
