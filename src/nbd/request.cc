#include "nbd/request.h"

namespace skerry::nbd {

bool DecodeRequestHeader(const char* p, RequestHeader* out) {
  if (GetBe32(p) != kRequestMagic) return false;
  out->flags = GetBe16(p + 4);
  out->type = GetBe16(p + 6);
  out->cookie = GetBe64(p + 8);
  out->offset = GetBe64(p + 16);
  out->length = GetBe32(p + 24);
  return true;
}

namespace {

bool IsWriteCommand(uint16_t type) {
  return type == kCmdWrite || type == kCmdTrim || type == kCmdWriteZeroes;
}

// The command flags a client may set on `type` given what we advertised.
uint16_t AllowedFlags(uint16_t type, const ExportLimits& limits) {
  uint16_t tx = limits.transmission_flags;
  // FUA is valid on every command once advertised (clients are known to set it on
  // reads); we honour it only where something is written.
  uint16_t allowed = (tx & kTxSendFua) ? kCmdFlagFua : 0;
  switch (type) {
    case kCmdRead:
      if (tx & kTxSendDf) allowed |= kCmdFlagDf;
      break;
    case kCmdWriteZeroes:
      allowed |= kCmdFlagNoHole;
      if (tx & kTxSendFastZero) allowed |= kCmdFlagFastZero;
      break;
    case kCmdBlockStatus: allowed |= kCmdFlagReqOne; break;
  }
  return allowed;
}

}  // namespace

uint32_t ValidateRequest(const RequestHeader& r, const ExportLimits& limits) {
  switch (r.type) {
    case kCmdRead:
    case kCmdWrite:
    case kCmdFlush:
    case kCmdTrim:
    case kCmdCache:
    case kCmdWriteZeroes:
    case kCmdBlockStatus: break;
    default: return kEinval;  // unknown command
  }
  // Before the flag check, so a write to a read-only export is EPERM whatever its flags.
  if (IsWriteCommand(r.type) && (limits.transmission_flags & kTxReadOnly)) return kEperm;
  if (r.flags & ~AllowedFlags(r.type, limits)) return kEinval;

  switch (r.type) {
    case kCmdFlush: return (r.offset == 0 && r.length == 0) ? 0 : kEinval;
    case kCmdBlockStatus:
      if (!limits.allocation_context || r.length == 0) return kEinval;
      break;
    case kCmdRead:
      // With structured replies EOVERFLOW tells the client to retry smaller.
      if (r.length > kMaxPayload) return limits.structured_replies ? kEoverflow : kEinval;
      break;
    case kCmdWrite:
      if (r.length > kMaxPayload) return kEinval;
      break;
  }
  if (r.offset > limits.size || r.length > limits.size - r.offset) {
    // The spec asks for ENOSPC when a write runs past the end, EINVAL otherwise.
    return (r.type == kCmdWrite || r.type == kCmdWriteZeroes) ? kEnospc : kEinval;
  }
  return 0;
}

}  // namespace skerry::nbd
