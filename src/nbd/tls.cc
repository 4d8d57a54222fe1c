#include "nbd/tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace skerry::nbd {
namespace {

// Default priorities: GnuTLS's NORMAL set; with PSK also the PSK key exchanges,
// which NORMAL leaves out. Only the (EC)DHE ones: plain PSK has no forward secrecy.
constexpr const char* kPriorityX509 = "NORMAL";
constexpr const char* kPriorityWithPsk = "NORMAL:+ECDHE-PSK:+DHE-PSK";

// Client records are at most 16 KiB; smaller pieces of one reply (headers, short
// reads) are corked into as few records as possible, bigger ones sent as they are.
constexpr size_t kCorkLimit = 16 * 1024;

Status TlsError(std::string_view what, int err) {
  return Status::IOError(std::string(what) + ": " + gnutls_strerror(err));
}

int PskLookup(gnutls_session_t session, const char* identity, gnutls_datum_t* key) {
  const auto* ctx = static_cast<const TlsContext*>(gnutls_session_get_ptr(session));
  const std::vector<unsigned char>* found = ctx->FindPsk(identity ? identity : "");
  if (found == nullptr) return -1;  // GnuTLS turns this into a failed handshake
  key->data = static_cast<unsigned char*>(gnutls_malloc(found->size()));
  if (key->data == nullptr) return -1;
  std::memcpy(key->data, found->data(), found->size());
  key->size = static_cast<unsigned>(found->size());
  return 0;
}

Result<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::FromErrno(errno, "open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A TLS session over a socket the connection owns.
class TlsTransport final : public Transport {
 public:
  explicit TlsTransport(gnutls_session_t session) : session_(session) {}
  ~TlsTransport() override { gnutls_deinit(session_); }

  Result<size_t> ReadSome(char* buf, size_t len) override {
    for (;;) {
      ssize_t n = gnutls_record_recv(session_, buf, len);
      if (n > 0) return static_cast<size_t>(n);
      if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) return PeerClosed();
      if (n == GNUTLS_E_INTERRUPTED) continue;
      if (n == GNUTLS_E_AGAIN) return Status::TimedOut("client sent nothing in time");
      if (n == GNUTLS_E_REHANDSHAKE)
        return Status::NotSupported("client asked for TLS renegotiation");
      return TlsError("TLS receive", static_cast<int>(n));
    }
  }

  Status WriteV(const iovec* iov, int iovcnt) override {
    bool corked = false;
    for (int i = 0; i < iovcnt; ++i) {
      const char* p = static_cast<const char*>(iov[i].iov_base);
      size_t len = iov[i].iov_len;
      if (len == 0) continue;
      if (len < kCorkLimit && !corked) {
        gnutls_record_cork(session_);
        corked = true;
      } else if (len >= kCorkLimit && corked) {
        SKERRY_RETURN_IF_ERROR(Uncork());
        corked = false;
      }
      while (len > 0) {
        ssize_t n = gnutls_record_send(session_, p, len);
        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN) continue;
        if (n < 0) return SendError(static_cast<int>(n));
        p += n;
        len -= static_cast<size_t>(n);
      }
    }
    return corked ? Uncork() : Status::OK();
  }

  bool has_buffered_input() const override { return gnutls_record_check_pending(session_) > 0; }
  void Bye() override { gnutls_bye(session_, GNUTLS_SHUT_WR); }
  bool is_tls() const override { return true; }

 private:
  Status Uncork() {
    int r = gnutls_record_uncork(session_, GNUTLS_RECORD_WAIT);
    return r < 0 ? SendError(r) : Status::OK();
  }
  static Status SendError(int err) {
    if (err == GNUTLS_E_PUSH_ERROR) return PeerClosed();
    return TlsError("TLS send", err);
  }

  gnutls_session_t session_;
};

}  // namespace

struct TlsContext::Credentials {
  gnutls_certificate_credentials_t x509 = nullptr;
  gnutls_psk_server_credentials_t psk = nullptr;
  gnutls_priority_t priority = nullptr;
  ~Credentials() {
    if (x509) gnutls_certificate_free_credentials(x509);
    if (psk) gnutls_psk_free_server_credentials(psk);
    if (priority) gnutls_priority_deinit(priority);
  }
};

TlsContext::~TlsContext() = default;

Result<TlsMode> ParseTlsMode(std::string_view text) {
  if (text == "off") return TlsMode::kOff;
  if (text == "optional") return TlsMode::kOptional;
  if (text == "required") return TlsMode::kRequired;
  return Status::InvalidArgument("TLS mode must be off, optional or required, not '" +
                                 std::string(text) + "'");
}

const char* TlsModeName(TlsMode mode) {
  switch (mode) {
    case TlsMode::kOff: return "off";
    case TlsMode::kOptional: return "optional";
    case TlsMode::kRequired: return "required";
  }
  return "?";
}

Result<std::map<std::string, std::vector<unsigned char>, std::less<>>> ParsePskFile(
    std::string_view text) {
  std::map<std::string, std::vector<unsigned char>, std::less<>> keys;
  int line_no = 0;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    // psktool writes "identity:hexkey"; an identity may itself hold ':', the key never.
    size_t colon = line.rfind(':');
    std::string where = "PSK file line " + std::to_string(line_no);
    if (colon == std::string_view::npos || colon == 0) {
      return Status::InvalidArgument(where + ": expected identity:hexkey");
    }
    std::string_view hex = line.substr(colon + 1);
    if (hex.empty() || hex.size() % 2 != 0) {
      return Status::InvalidArgument(where + ": key must be an even number of hex digits");
    }
    std::vector<unsigned char> key;
    for (size_t i = 0; i < hex.size(); i += 2) {
      int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
      if (hi < 0 || lo < 0) return Status::InvalidArgument(where + ": key is not hex");
      key.push_back(static_cast<unsigned char>(hi * 16 + lo));
    }
    keys[std::string(line.substr(0, colon))] = std::move(key);
  }
  if (keys.empty()) return Status::InvalidArgument("PSK file holds no keys");
  return keys;
}

Result<std::shared_ptr<TlsContext>> TlsContext::Create(const TlsOptions& options) {
  std::shared_ptr<TlsContext> ctx(new TlsContext());
  ctx->mode_ = options.mode;
  if (options.mode == TlsMode::kOff) return ctx;

  bool want_x509 = !options.cert_file.empty() || !options.key_file.empty();
  bool want_psk = !options.psk_file.empty();
  if (!want_x509 && !want_psk) {
    return Status::InvalidArgument(
        "TLS is on but neither a certificate nor a PSK file is configured");
  }
  if (want_x509 && (options.cert_file.empty() || options.key_file.empty())) {
    return Status::InvalidArgument("TLS X.509 needs both a certificate file and a key file");
  }
  if (!options.client_ca_file.empty() && !want_x509) {
    return Status::InvalidArgument("a client CA file needs a server certificate too");
  }

  ctx->creds_ = std::make_unique<Credentials>();
  Credentials& creds = *ctx->creds_;
  if (want_x509) {
    int r = gnutls_certificate_allocate_credentials(&creds.x509);
    if (r < 0) return TlsError("allocating certificate credentials", r);
    r = gnutls_certificate_set_x509_key_file(creds.x509, options.cert_file.c_str(),
                                             options.key_file.c_str(), GNUTLS_X509_FMT_PEM);
    if (r < 0) {
      return Status::InvalidArgument("loading TLS certificate " + options.cert_file + " and key " +
                                     options.key_file + ": " + gnutls_strerror(r));
    }
    if (!options.client_ca_file.empty()) {
      r = gnutls_certificate_set_x509_trust_file(creds.x509, options.client_ca_file.c_str(),
                                                 GNUTLS_X509_FMT_PEM);
      if (r <= 0) {
        return Status::InvalidArgument("loading client CA " + options.client_ca_file + ": " +
                                       (r < 0 ? gnutls_strerror(r) : "no certificate in it"));
      }
      ctx->verify_clients_ = true;
    }
    gnutls_certificate_set_known_dh_params(creds.x509, GNUTLS_SEC_PARAM_MEDIUM);
  }
  if (want_psk) {
    SKERRY_ASSIGN_OR_RETURN(std::string text, ReadTextFile(options.psk_file));
    auto keys = ParsePskFile(text);
    if (!keys.ok()) return keys.status().Prefixed(options.psk_file);
    ctx->psk_keys_ = std::move(keys).value();
    int r = gnutls_psk_allocate_server_credentials(&creds.psk);
    if (r < 0) return TlsError("allocating PSK credentials", r);
    gnutls_psk_set_server_credentials_function(creds.psk, PskLookup);
    gnutls_psk_set_server_known_dh_params(creds.psk, GNUTLS_SEC_PARAM_MEDIUM);
  }
  std::string priority = options.priority;
  if (priority.empty()) priority = want_psk ? kPriorityWithPsk : kPriorityX509;
  const char* bad = nullptr;
  int r = gnutls_priority_init(&creds.priority, priority.c_str(), &bad);
  if (r < 0) {
    return Status::InvalidArgument("TLS priority '" + priority + "' is invalid near '" +
                                   (bad ? bad : "") + "'");
  }
  return ctx;
}

const std::vector<unsigned char>* TlsContext::FindPsk(std::string_view identity) const {
  auto it = psk_keys_.find(identity);
  return it == psk_keys_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<Transport>> TlsContext::StartServerSession(int fd,
                                                                  std::chrono::milliseconds timeout,
                                                                  std::string_view peer) const {
  if (!creds_) return Status::NotSupported("TLS is off");
  gnutls_session_t session;
  // GNUTLS_NO_SIGNAL: sends use MSG_NOSIGNAL, so a vanished client is an error, not SIGPIPE.
  int r = gnutls_init(&session, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
  if (r < 0) return TlsError("gnutls_init", r);
  auto transport = std::make_unique<TlsTransport>(session);  // owns the session from here
  gnutls_session_set_ptr(session, const_cast<TlsContext*>(this));
  gnutls_priority_set(session, creds_->priority);
  if (creds_->x509) {
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, creds_->x509);
    if (verify_clients_) gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
  }
  if (creds_->psk) gnutls_credentials_set(session, GNUTLS_CRD_PSK, creds_->psk);
  gnutls_transport_set_int(session, fd);
  gnutls_handshake_set_timeout(session, static_cast<unsigned>(timeout.count()));

  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    r = gnutls_handshake(session);
  } while (r < 0 && !gnutls_error_is_fatal(r) && std::chrono::steady_clock::now() < deadline);
  if (r < 0) return TlsError("TLS handshake", r);

  std::string who;
  if (verify_clients_) {
    unsigned verify = 0;
    r = gnutls_certificate_verify_peers2(session, &verify);
    if (r < 0) return TlsError("verifying the client certificate", r);
    if (verify != 0) {
      gnutls_datum_t text{};
      gnutls_certificate_verification_status_print(verify, GNUTLS_CRT_X509, &text, 0);
      std::string msg = text.data ? reinterpret_cast<const char*>(text.data) : "rejected";
      gnutls_free(text.data);
      return Status::InvalidArgument("client certificate: " + msg);
    }
    who = "verified client certificate";
  }
  if (gnutls_auth_get_type(session) == GNUTLS_CRD_PSK) {
    const char* identity = gnutls_psk_server_get_username(session);
    who = std::string("PSK identity '") + (identity ? identity : "") + "'";
  }
  // The session description leaves out the key-exchange group of TLS 1.3 PSK
  // sessions; name it, so the log shows whether the session has forward secrecy.
  const char* group = gnutls_group_get_name(gnutls_group_get(session));
  if (group != nullptr) who += std::string(who.empty() ? "" : ", ") + "group " + group;
  char* desc = gnutls_session_get_desc(session);
  spdlog::info("nbd: {}: TLS established: {}{}{}", peer, desc ? desc : "?", who.empty() ? "" : ", ",
               who);
  gnutls_free(desc);
  return std::unique_ptr<Transport>(std::move(transport));
}

}  // namespace skerry::nbd
