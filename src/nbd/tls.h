// TLS for NBD connections: configuration, credentials, and the server side of the
// handshake that follows NBD_OPT_STARTTLS (GnuTLS).
//
// Two kinds of credentials, usable together:
//  * X.509: a server certificate and key (PEM); optionally a CA file, and then every
//    client must present a certificate signed by that CA.
//  * PSK: a file in psktool's format, one "identity:hexkey" per line.
//
// Modes (docs/nbd.md): kOff answers STARTTLS with NBD_REP_ERR_POLICY; kOptional lets
// each client choose; kRequired answers every option but STARTTLS and ABORT with
// NBD_REP_ERR_TLS_REQD until TLS is up (the spec's FORCEDTLS).
//
// Thread-safety: a TlsContext is immutable after Create and shared by all
// connections; each StartServerSession makes a session owned by one connection.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nbd/transport.h"
#include "skerry/status.h"

namespace skerry::nbd {

enum class TlsMode { kOff, kOptional, kRequired };

// "off" | "optional" | "required".
Result<TlsMode> ParseTlsMode(std::string_view text);
const char* TlsModeName(TlsMode mode);

struct TlsOptions {
  TlsMode mode = TlsMode::kOff;
  std::string cert_file;       // server certificate chain (PEM)
  std::string key_file;        // its private key (PEM)
  std::string client_ca_file;  // set: clients must present a certificate signed by it
  std::string psk_file;        // psktool format: "identity:hexkey" per line
  std::string priority;        // GnuTLS priority string; empty picks a default
};

class TlsContext {
 public:
  // Loads the credentials. InvalidArgument when the mode is not off but no credentials
  // are given, or a file does not parse.
  static Result<std::shared_ptr<TlsContext>> Create(const TlsOptions& options);
  ~TlsContext();

  TlsMode mode() const { return mode_; }

  // Runs the server side of a TLS handshake on a connected socket that stays owned
  // by the caller. `timeout` bounds the handshake. `peer` names the client in logs.
  Result<std::unique_ptr<Transport>> StartServerSession(int fd, std::chrono::milliseconds timeout,
                                                        std::string_view peer) const;

  // The key of a PSK identity, or null (used by the GnuTLS callback).
  const std::vector<unsigned char>* FindPsk(std::string_view identity) const;

 private:
  TlsContext() = default;
  struct Credentials;
  TlsMode mode_ = TlsMode::kOff;
  bool verify_clients_ = false;
  std::unique_ptr<Credentials> creds_;
  std::map<std::string, std::vector<unsigned char>, std::less<>> psk_keys_;
};

// Parses psktool's key file text. Exposed for tests.
Result<std::map<std::string, std::vector<unsigned char>, std::less<>>> ParsePskFile(
    std::string_view text);

}  // namespace skerry::nbd
