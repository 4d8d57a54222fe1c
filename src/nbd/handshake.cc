#include "nbd/handshake.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "nbd/protocol.h"

namespace skerry::nbd {
namespace {

std::string_view AsText(const std::vector<char>& data, size_t pos, size_t len) {
  return std::string_view(data.data() + pos, len);
}

}  // namespace

uint16_t TransmissionFlagsFor(bool read_only, bool structured_replies) {
  // FLUSH and CACHE are harmless on read-only exports, and multi-conn holds for
  // every export by the ExportProvider contract.
  uint16_t flags = kTxHasFlags | kTxSendFlush | kTxSendCache | kTxCanMultiConn;
  if (read_only) {
    flags |= kTxReadOnly;
  } else {
    // Zeroing is a map operation in skerry, never slower than writing: FAST_ZERO
    // requests always succeed.
    flags |= kTxSendFua | kTxSendTrim | kTxSendWriteZeroes | kTxSendFastZero;
  }
  if (structured_replies) flags |= kTxSendDf;  // the spec forbids DF without them
  return flags;
}

Handshake::Handshake(std::unique_ptr<Transport>& transport, int fd, const HandshakeConfig& config,
                     std::string peer)
    : transport_(transport),
      fd_(fd),
      config_(config),
      peer_(std::move(peer)),
      tls_required_(config.tls && config.tls->mode() == TlsMode::kRequired) {}

Result<NegotiatedExport> Handshake::Run() {
  char greeting[18];
  PutBe64(greeting, kInitMagic);
  PutBe64(greeting + 8, kOptionMagic);
  PutBe16(greeting + 16, kFlagFixedNewstyle | kFlagNoZeroes);
  SKERRY_RETURN_IF_ERROR(transport_->WriteAll(greeting, sizeof greeting));

  char client_flags[4];
  SKERRY_RETURN_IF_ERROR(transport_->ReadFull(client_flags, sizeof client_flags));
  uint32_t flags = GetBe32(client_flags);
  if (flags & ~(kClientFlagFixedNewstyle | kClientFlagNoZeroes)) {
    return Status::InvalidArgument("unknown client flags " + std::to_string(flags));
  }
  no_zeroes_ = flags & kClientFlagNoZeroes;
  if (!(flags & kClientFlagFixedNewstyle) && tls_required_) {
    // TLS needs fixed newstyle; such a client could only reach an export in clear.
    return Status::InvalidArgument("client does not speak fixed newstyle and TLS is required");
  }

  for (int count = 0; count < kMaxOptions; ++count) {
    char header[kOptionHeaderSize];
    SKERRY_RETURN_IF_ERROR(transport_->ReadFull(header, sizeof header));
    if (GetBe64(header) != kOptionMagic) return Status::InvalidArgument("bad option magic");
    uint32_t option = GetBe32(header + 8);
    uint32_t length = GetBe32(header + 12);
    if (length > kMaxOptionLength) {
      return Status::InvalidArgument("option " + std::to_string(option) + " carries " +
                                     std::to_string(length) + " bytes of data");
    }
    data_.resize(length);
    SKERRY_RETURN_IF_ERROR(transport_->ReadFull(data_.data(), length));

    Result<Next> next = HandleOption(option);
    if (!next.ok() || *next != Next::kTransmission) {
      if (result_.volume) {  // opened for GO but failed before handing it over
        config_.provider->ReleaseExport(result_.name, result_.volume);
        result_.volume.reset();
      }
    }
    if (!next.ok()) return next.status();
    if (*next == Next::kAbort) return NegotiatedExport{};
    if (*next == Next::kTransmission) return std::move(result_);
  }
  return Status::InvalidArgument("too many options");
}

Result<Handshake::Next> Handshake::HandleOption(uint32_t option) {
  spdlog::debug("nbd: {}: option {} ({} bytes)", peer_, OptionName(option), data_.size());
  if (tls_required_ && !tls_active_ && option != kOptStartTls && option != kOptAbort) {
    if (option == kOptExportName) {
      // EXPORT_NAME cannot be answered with an error; the spec says hang up.
      return Status::InvalidArgument("NBD_OPT_EXPORT_NAME before STARTTLS and TLS is required");
    }
    SKERRY_RETURN_IF_ERROR(SendReply(option, kRepErrTlsReqd, "TLS is required"));
    return Next::kContinue;
  }

  switch (option) {
    case kOptExportName: return HandleExportName();
    case kOptAbort:
      // The client may already be gone; either way the session is over.
      (void)SendReply(option, kRepAck);
      return Next::kAbort;
    case kOptList: SKERRY_RETURN_IF_ERROR(HandleList()); return Next::kContinue;
    case kOptStartTls: SKERRY_RETURN_IF_ERROR(HandleStartTls()); return Next::kContinue;
    case kOptInfo:
    case kOptGo: return HandleInfoOrGo(option);
    case kOptStructuredReply:
      if (!data_.empty()) {
        SKERRY_RETURN_IF_ERROR(SendReply(option, kRepErrInvalid, "STRUCTURED_REPLY takes no data"));
      } else {
        structured_ = true;
        SKERRY_RETURN_IF_ERROR(SendReply(option, kRepAck));
      }
      return Next::kContinue;
    case kOptListMetaContext:
    case kOptSetMetaContext:
      SKERRY_RETURN_IF_ERROR(HandleMetaContext(option));
      return Next::kContinue;
    default:
      SKERRY_RETURN_IF_ERROR(SendReply(option, kRepErrUnsup, "unsupported option"));
      return Next::kContinue;
  }
}

Status Handshake::OpenExport(const std::string& name) {
  SKERRY_ASSIGN_OR_RETURN(result_.volume, config_.provider->OpenExport(name));
  result_.name = name;
  result_.size = result_.volume->size();
  result_.structured_replies = structured_;
  result_.transmission_flags = TransmissionFlagsFor(result_.volume->read_only(), structured_);
  // BLOCK_STATUS is allowed only for the export the contexts were selected on.
  result_.allocation_context = allocation_selected_ && meta_export_ == name;
  return Status::OK();
}

Result<Handshake::Next> Handshake::HandleExportName() {
  if (data_.size() > kMaxStringLength) return Status::InvalidArgument("export name too long");
  std::string name(data_.begin(), data_.end());
  Status st = OpenExport(name);
  if (!st.ok()) {
    // No error reply exists for EXPORT_NAME: the spec says hang up.
    return st.Prefixed("export '" + name + "'");
  }
  char reply[8 + 2 + 124] = {};
  PutBe64(reply, result_.size);
  PutBe16(reply + 8, result_.transmission_flags);
  SKERRY_RETURN_IF_ERROR(transport_->WriteAll(reply, no_zeroes_ ? 10 : sizeof reply));
  return Next::kTransmission;
}

Result<Handshake::Next> Handshake::HandleInfoOrGo(uint32_t option) {
  // Data: name length (32), name, number of requests (16), requests (16 each).
  size_t size = data_.size();
  if (size < 6) {
    SKERRY_RETURN_IF_ERROR(SendReply(option, kRepErrInvalid, "option data too short"));
    return Next::kContinue;
  }
  uint32_t name_len = GetBe32(data_.data());
  if (name_len > size - 6 || name_len > kMaxStringLength) {
    SKERRY_RETURN_IF_ERROR(SendReply(option, kRepErrInvalid, "bad export name length"));
    return Next::kContinue;
  }
  uint16_t num_requests = GetBe16(data_.data() + 4 + name_len);
  if (4 + name_len + 2 + 2 * static_cast<size_t>(num_requests) != size) {
    SKERRY_RETURN_IF_ERROR(SendReply(option, kRepErrInvalid, "bad information request list"));
    return Next::kContinue;
  }
  bool want_name = false;
  for (uint16_t i = 0; i < num_requests; ++i) {
    if (GetBe16(data_.data() + 4 + name_len + 2 + 2 * i) == kInfoName) want_name = true;
  }
  std::string name(AsText(data_, 4, name_len));

  auto refuse = [&](const Status& st) -> Result<Next> {
    spdlog::info("nbd: {}: export '{}' refused: {}", peer_, name, st.ToString());
    SKERRY_RETURN_IF_ERROR(SendReply(option, kRepErrUnknown, st.ToString()));
    return Next::kContinue;
  };
  if (option == kOptInfo) {
    // INFO only describes: the export is not opened for this connection.
    auto info = config_.provider->DescribeExport(name);
    if (!info.ok()) return refuse(info.status());
    SKERRY_RETURN_IF_ERROR(SendExportInfo(option, name, info->size,
                                          TransmissionFlagsFor(info->read_only, structured_), want_name));
    return Next::kContinue;
  }
  if (Status st = OpenExport(name); !st.ok()) return refuse(st);
  SKERRY_RETURN_IF_ERROR(
      SendExportInfo(option, name, result_.size, result_.transmission_flags, want_name));
  return Next::kTransmission;
}

Status Handshake::SendExportInfo(uint32_t option, const std::string& name, uint64_t size,
                                 uint16_t flags, bool send_name) {
  char info[12];
  PutBe16(info, kInfoExport);
  PutBe64(info + 2, size);
  PutBe16(info + 10, flags);
  SKERRY_RETURN_IF_ERROR(SendReply(option, kRepInfo, std::string_view(info, sizeof info)));

  // Sent whether asked or not: these are the spec's defaults (except a max payload
  // above the 32 MiB minimum), so a client that did not ask loses nothing.
  char block[14];
  PutBe16(block, kInfoBlockSize);
  PutBe32(block + 2, kAdvertisedMinBlock);
  PutBe32(block + 6, kAdvertisedPreferredBlock);
  PutBe32(block + 10, kMaxPayload);
  SKERRY_RETURN_IF_ERROR(SendReply(option, kRepInfo, std::string_view(block, sizeof block)));

  if (send_name) {
    std::string item(2, '\0');
    PutBe16(item.data(), kInfoName);
    item += name;
    SKERRY_RETURN_IF_ERROR(SendReply(option, kRepInfo, item));
  }
  return SendReply(option, kRepAck);
}

Status Handshake::HandleList() {
  if (!data_.empty()) return SendReply(kOptList, kRepErrInvalid, "LIST takes no data");
  auto names = config_.provider->ListExports();
  if (!names.ok()) return SendReply(kOptList, kRepErrPolicy, names.status().ToString());
  for (const std::string& name : *names) {
    if (name.size() > kMaxStringLength) continue;  // not a name a client could send back
    std::string payload(4, '\0');
    PutBe32(payload.data(), static_cast<uint32_t>(name.size()));
    payload += name;
    SKERRY_RETURN_IF_ERROR(SendReply(kOptList, kRepServer, payload));
  }
  return SendReply(kOptList, kRepAck);
}

Status Handshake::HandleStartTls() {
  if (!config_.tls || config_.tls->mode() == TlsMode::kOff) {
    return SendReply(kOptStartTls, kRepErrPolicy, "TLS is not enabled on this server");
  }
  if (!data_.empty()) return SendReply(kOptStartTls, kRepErrInvalid, "STARTTLS takes no data");
  if (tls_active_) return SendReply(kOptStartTls, kRepErrInvalid, "TLS is already active");
  SKERRY_RETURN_IF_ERROR(SendReply(kOptStartTls, kRepAck));
  SKERRY_ASSIGN_OR_RETURN(transport_,
                          config_.tls->StartServerSession(fd_, config_.tls_timeout, peer_));
  tls_active_ = true;
  // The spec: nothing negotiated in clear survives STARTTLS.
  structured_ = false;
  allocation_selected_ = false;
  meta_export_.clear();
  return Status::OK();
}

Status Handshake::HandleMetaContext(uint32_t option) {
  bool set = option == kOptSetMetaContext;
  if (set) {  // replaces the selection even when the request fails
    allocation_selected_ = false;
    meta_export_.clear();
  }
  if (!structured_) {
    return SendReply(option, kRepErrInvalid, "negotiate structured replies first");
  }
  // Data: name length (32), name, number of queries (32), queries (length 32 + text).
  size_t size = data_.size(), pos = 0;
  auto take32 = [&](uint32_t* v) {
    if (size - pos < 4) return false;
    *v = GetBe32(data_.data() + pos);
    pos += 4;
    return true;
  };
  uint32_t name_len = 0, num_queries = 0;
  if (!take32(&name_len) || name_len > kMaxStringLength || name_len > size - pos) {
    return SendReply(option, kRepErrInvalid, "bad export name length");
  }
  std::string name(AsText(data_, pos, name_len));
  pos += name_len;
  if (!take32(&num_queries)) return SendReply(option, kRepErrInvalid, "missing query count");
  bool matches = !set && num_queries == 0;  // LIST without queries: everything we have
  for (uint32_t i = 0; i < num_queries; ++i) {
    uint32_t len = 0;
    if (!take32(&len) || len > kMaxStringLength || len > size - pos) {
      return SendReply(option, kRepErrInvalid, "bad query length");
    }
    std::string_view query = AsText(data_, pos, len);
    pos += len;
    // "base:" is a wildcard for LIST only; other namespaces and leaves are ignored.
    if (query == kBaseAllocation || (!set && query == "base:")) matches = true;
  }
  if (pos != size) return SendReply(option, kRepErrInvalid, "trailing bytes after the queries");

  if (matches) {
    std::string payload(4, '\0');
    PutBe32(payload.data(), set ? kAllocationContextId : 0);  // LIST ids are reserved: 0
    payload += kBaseAllocation;
    SKERRY_RETURN_IF_ERROR(SendReply(option, kRepMetaContext, payload));
  }
  if (set && matches) {
    allocation_selected_ = true;
    meta_export_ = std::move(name);
  }
  return SendReply(option, kRepAck);
}

Status Handshake::SendReply(uint32_t option, uint32_t type, std::string_view payload) {
  char header[kOptionReplyHeaderSize];
  PutBe64(header, kOptionReplyMagic);
  PutBe32(header + 8, option);
  PutBe32(header + 12, type);
  PutBe32(header + 16, static_cast<uint32_t>(payload.size()));
  iovec iov[2] = {{header, sizeof header}, {const_cast<char*>(payload.data()), payload.size()}};
  return transport_->WriteV(iov, payload.empty() ? 1 : 2);
}

}  // namespace skerry::nbd
