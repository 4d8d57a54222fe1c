// Handshake: the server side of the fixed newstyle negotiation, from the greeting
// until the client picks an export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME) or leaves.
//
// It answers NBD_OPT_LIST, INFO, GO, EXPORT_NAME, ABORT, STRUCTURED_REPLY,
// LIST_META_CONTEXT and SET_META_CONTEXT (base:allocation), STARTTLS (switching the
// connection's Transport to TLS), and NBD_REP_ERR_UNSUP to anything else. Every
// length the client sends is checked before anything is allocated for it.
//
// Thread-safety: a Handshake belongs to one connection's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nbd/export_provider.h"
#include "nbd/tls.h"
#include "nbd/transport.h"
#include "skerry/status.h"
#include "skerry/volume.h"

namespace skerry::nbd {

// Option data we are willing to hold: an INFO/GO or META_CONTEXT option with a
// 4096-byte name and a few queries fits many times over. Longer options are a
// client we hang up on rather than buffer for.
inline constexpr uint32_t kMaxOptionLength = 64 * 1024;
// Options one connection may send before it is considered abusive.
inline constexpr int kMaxOptions = 1000;

struct HandshakeConfig {
  ExportProvider* provider = nullptr;
  const TlsContext* tls = nullptr;  // null: TLS off
  std::chrono::milliseconds tls_timeout{30'000};
};

// What the client and server agreed on; input of the transmission phase.
struct NegotiatedExport {
  std::string name;
  std::shared_ptr<Volume> volume;  // null when the client ended the session instead
  uint64_t size = 0;
  uint16_t transmission_flags = 0;
  bool structured_replies = false;
  bool allocation_context = false;  // base:allocation selected for this export
};

// The transmission flags we advertise for an export (docs/nbd.md says why each).
uint16_t TransmissionFlagsFor(bool read_only, bool structured_replies);

class Handshake {
 public:
  // `transport` is replaced by a TLS transport after a successful STARTTLS; `fd` is
  // the socket under it. `peer` names the client in logs.
  Handshake(std::unique_ptr<Transport>& transport, int fd, const HandshakeConfig& config,
            std::string peer);

  // Greets the client and answers options until it picks an export. Returns the
  // export (the caller must ReleaseExport it), an export with a null volume when the
  // client sent NBD_OPT_ABORT, or an error: I/O failure or a protocol violation,
  // after which the caller hangs up.
  Result<NegotiatedExport> Run();

 private:
  enum class Next { kContinue, kTransmission, kAbort };

  Result<Next> HandleOption(uint32_t option);
  Result<Next> HandleExportName();
  Result<Next> HandleInfoOrGo(uint32_t option);
  Status HandleList();
  Status HandleStartTls();
  Status HandleMetaContext(uint32_t option);

  Status SendReply(uint32_t option, uint32_t type, std::string_view payload = {});
  // Sends a REP_INFO per item, then ACK.
  Status SendExportInfo(uint32_t option, const std::string& name, uint64_t size, uint16_t flags,
                        bool send_name);
  Status OpenExport(const std::string& name);

  std::unique_ptr<Transport>& transport_;
  int fd_;
  const HandshakeConfig& config_;
  std::string peer_;
  const bool tls_required_;  // FORCEDTLS: options before STARTTLS are refused

  std::vector<char> data_;  // the current option's data
  bool no_zeroes_ = false;
  bool tls_active_ = false;
  bool structured_ = false;
  std::string meta_export_;  // export named by the last successful SET_META_CONTEXT
  bool allocation_selected_ = false;
  NegotiatedExport result_;
};

}  // namespace skerry::nbd
