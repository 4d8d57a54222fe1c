// Shared by the NBD fuzzers (nbd_handshake_fuzz, nbd_request_fuzz) and the seed
// generator (make_seed_corpus): an in-memory Transport, and encoders of the bytes a
// client sends.
//
// Why not a socketpair: the server code above Transport (Handshake, Transmission,
// BufferedReader, ReplyWriter) is the same either way, but a socket needs a second
// thread to feed and drain it, and a full socket buffer or a stalled drain is a hang
// the fuzzer would report as a bug of ours. In memory, reading past the input is
// end of stream (the client closed its side), writing never blocks, every byte the
// server sends is checked as it is written, and one input costs microseconds.
//
// Thread-safety: MemTransport allows one reader and one writer at a time, like every
// Transport (the writer is serialized by ReplyWriter's send mutex).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "nbd/protocol.h"
#include "nbd/transport.h"

namespace skerry::nbd::fuzz {

// The client's side of a connection, played from a byte string.
//  * Reads return the input in pieces of at most `chunk` bytes (0: as much as asked),
//    so partial reads reach the server's read loops; past the end they report
//    PeerClosed, as a socket whose client shut down its write side does.
//  * Writes pass every byte to `sink` and succeed, until `cut` bytes have been
//    written (SIZE_MAX: never): a write that would cross it fails as if the client
//    had vanished (nothing of it is delivered), and from then on reads fail too.
class MemTransport final : public Transport {
 public:
  using Sink = std::function<void(const char*, size_t)>;
  MemTransport(std::string_view input, size_t chunk, size_t cut, Sink sink)
      : input_(input), chunk_(chunk), cut_(cut), sink_(std::move(sink)) {}

  // Between phases (no read or write under way): where output goes from now on,
  // and a cut `cut` bytes from here (SIZE_MAX: never).
  void Redirect(Sink sink, size_t cut) {
    sink_ = std::move(sink);
    cut_ = cut == SIZE_MAX ? SIZE_MAX : written_ + cut;
  }

  Result<size_t> ReadSome(char* buf, size_t len) override {
    if (gone_.load() || pos_ == input_.size()) return PeerClosed();
    size_t n = std::min(len, input_.size() - pos_);
    if (chunk_ != 0) n = std::min(n, chunk_);
    std::memcpy(buf, input_.data() + pos_, n);
    pos_ += n;
    return n;
  }

  Status WriteV(const iovec* iov, int iovcnt) override {
    size_t total = 0;
    for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
    if (gone_.load() || total > cut_ - written_) {
      gone_.store(true);
      return PeerClosed();
    }
    written_ += total;
    for (int i = 0; i < iovcnt; ++i) {
      if (iov[i].iov_len > 0) sink_(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    }
    return Status::OK();
  }

  bool is_tls() const override { return false; }
  bool gone() const { return gone_.load(); }
  size_t consumed() const { return pos_; }

 private:
  std::string_view input_;
  size_t pos_ = 0;
  const size_t chunk_;
  size_t cut_;
  size_t written_ = 0;
  std::atomic<bool> gone_{false};
  Sink sink_;
};

// ---- Encoders of client bytes ----

inline std::string Be16(uint16_t v) {
  std::string s(2, '\0');
  PutBe16(s.data(), v);
  return s;
}
inline std::string Be32(uint32_t v) {
  std::string s(4, '\0');
  PutBe32(s.data(), v);
  return s;
}
inline std::string Be64(uint64_t v) {
  std::string s(8, '\0');
  PutBe64(s.data(), v);
  return s;
}

// An option: IHAVEOPT, option, length, data.
inline std::string Option(uint32_t option, std::string_view data = {}) {
  return Be64(kOptionMagic) + Be32(option) + Be32(static_cast<uint32_t>(data.size())) +
         std::string(data);
}
// Data of NBD_OPT_INFO / NBD_OPT_GO.
inline std::string InfoData(std::string_view name, const std::vector<uint16_t>& requests = {}) {
  std::string d = Be32(static_cast<uint32_t>(name.size())) + std::string(name) +
                  Be16(static_cast<uint16_t>(requests.size()));
  for (uint16_t r : requests) d += Be16(r);
  return d;
}
// Data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.
inline std::string MetaData(std::string_view name, const std::vector<std::string>& queries) {
  std::string d = Be32(static_cast<uint32_t>(name.size())) + std::string(name) +
                  Be32(static_cast<uint32_t>(queries.size()));
  for (const std::string& q : queries) d += Be32(static_cast<uint32_t>(q.size())) + q;
  return d;
}
// A transmission request header (no payload).
inline std::string Request(uint16_t type, uint64_t offset, uint32_t length, uint16_t flags = 0,
                           uint64_t cookie = 0) {
  return Be32(kRequestMagic) + Be16(flags) + Be16(type) + Be64(cookie) + Be64(offset) +
         Be32(length);
}

// ---- The request fuzzer's configuration (its first two input bytes) ----
//
// Byte 0 chooses how the session was negotiated and the conditions it runs under;
// byte 1 (bit 7 set) cuts the connection after some output. nbd_request_fuzz.cc
// applies them; make_seed_corpus uses the same names to write seeds.
inline constexpr uint8_t kReqStructured = 1 << 0;   // NBD_OPT_STRUCTURED_REPLY
inline constexpr uint8_t kReqMetaContext = 1 << 1;  // SET_META_CONTEXT base:allocation
inline constexpr uint8_t kReqReadOnly = 1 << 2;     // export "ro" instead of "disk"
inline constexpr uint8_t kReqExportName = 1 << 3;   // NBD_OPT_EXPORT_NAME instead of GO
inline constexpr uint8_t kReqChunked = 1 << 4;      // the client's bytes arrive 13 at a time
inline constexpr uint8_t kReqFault = 1 << 5;        // I/O touching kFaultOffset fails (EIO)
inline constexpr uint8_t kReqTightLimits = 1 << 6;  // 2 requests / 128 KiB in flight
inline constexpr uint8_t kReqSmallReads = 1 << 7;   // with kReqChunked: 1 at a time
// In byte 1: the client vanishes once (byte1 & 0x7f) * 61 bytes of replies were sent.
inline constexpr uint8_t kReqCut = 1 << 7;

inline constexpr uint64_t kFuzzVolumeSize = 1 << 20;   // both exports
inline constexpr uint32_t kFuzzBlockSize = 64 * 1024;  // MemVolume blocks
inline constexpr uint64_t kFaultOffset = 192 * 1024;   // with kReqFault: 4 KiB here fail

// ---- The handshake fuzzer's configuration (its first input byte) ----
// bits 0-1: TLS (0 and 3: none, 1: optional, 2: required); bits 2-3: read chunk
// (unlimited, 1, 3, 17 bytes); bits 4-7: 0 no cut, else writes fail after (v-1)*24 bytes.
inline constexpr uint8_t kHsTlsOptional = 1;
inline constexpr uint8_t kHsTlsRequired = 2;

}  // namespace skerry::nbd::fuzz
