// A transmission-phase request: its header, and the single check of whether it may
// reach the volume.
//
// ValidateRequest is the one place where client-given commands, flags, offsets and
// lengths are judged; code after it (RequestExecutor, the Volume) trusts them.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>

#include "nbd/protocol.h"

namespace skerry::nbd {

struct RequestHeader {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};

// What validation needs to know about the negotiated export.
struct ExportLimits {
  uint64_t size = 0;
  uint16_t transmission_flags = 0;
  bool structured_replies = false;
  bool allocation_context = false;
};

// Decodes kRequestHeaderSize bytes. False when the magic is wrong: the stream is
// out of step and the connection must be dropped.
bool DecodeRequestHeader(const char* p, RequestHeader* out);

// 0 when the request may be executed, else the NBD error to answer it with.
// REQUIRES: header.type != kCmdDisc (DISC is not a request that gets a reply).
uint32_t ValidateRequest(const RequestHeader& header, const ExportLimits& limits);

// Bytes of payload that follow the header on the wire.
inline uint32_t PayloadLength(const RequestHeader& header) {
  return header.type == kCmdWrite ? header.length : 0;
}

}  // namespace skerry::nbd
