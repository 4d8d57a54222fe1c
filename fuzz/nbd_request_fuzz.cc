// Fuzzes the NBD transmission phase (src/nbd/transmission.cc, request.cc,
// request_executor.cc, reply_writer.cc, buffered_reader.cc): after a real
// Handshake with a valid client prefix, the input is the client's request stream
// (headers and WRITE payloads, valid or not), served by the real Transmission with
// a worker pool, over in-memory volumes of 1 MiB in 64 KiB blocks ("disk" writable,
// "ro" read-only with known contents). The end of the input is the client closing
// its side, so every session ends; no request can cost more than the 1 MiB export.
//
// The first two input bytes are configuration, not sent (nbd_fuzz.h, kReq*): how
// the session was negotiated (structured replies or simple, base:allocation or
// not, writable or read-only export, GO or EXPORT_NAME), how the bytes are split
// into reads, an EIO region on "disk", tight in-flight limits (so the reader waits
// for workers), and a client that vanishes after some output.
//
// Beyond crashes, leaks, races the sanitizers see and hangs, every session is
// checked against a framing of the input made here, independently of the server:
//  * every request the client sent completely gets exactly one reply (unless the
//    client vanished), and nothing else is sent; replies are whole and well formed
//    (simple replies only without structured replies, and never for READ or
//    BLOCK_STATUS with them; chunks of known types, NONE only with DONE);
//  * a request succeeds only if it is a known command within the export, not a
//    write to a read-only export, and passes ValidateRequest; a valid request
//    succeeds unless it ran into the EIO region (then its error is EIO); an
//    invalid one gets ValidateRequest's error;
//  * a successful READ is described completely (data and hole chunks in order,
//    exactly covering the range; simple: exactly `length` bytes), and on "ro" every
//    byte and hole matches its contents; BLOCK_STATUS sends one chunk of nonzero
//    descriptors within the range, one with REQ_ONE;
//  * the session ends with OK unless the input had a bad magic or an oversized
//    WRITE; the export is flushed and released once, as Connection does.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mem_export_provider.h"
#include "mem_volume.h"
#include "nbd/handshake.h"
#include "nbd/protocol.h"
#include "nbd/request.h"
#include "nbd/request_executor.h"
#include "nbd/transmission.h"
#include "nbd/worker_pool.h"
#include "nbd_fuzz.h"

using namespace skerry;
using namespace skerry::nbd;
using namespace skerry::nbd::fuzz;

namespace {

[[noreturn]] void Fail(const char* what, uint64_t cookie = 0) {
  std::fprintf(stderr, "nbd_request_fuzz: %s (request cookie %llu)\n", what,
               static_cast<unsigned long long>(cookie));
  std::abort();
}

// Contents of "ro": 0xab in its first block, 100 bytes of 0xcd inside its third,
// zeros elsewhere (holes, except the rest of the third block).
constexpr uint64_t kRoCdOffset = 128 * 1024 + 1000;
constexpr uint64_t kRoCdLength = 100;
// Whether n bytes at p are "ro"'s bytes at offset (memcmp against runs of one value:
// a READ of the whole export must not cost milliseconds).
bool RoMatches(const char* p, uint64_t offset, size_t n) {
  static const std::string zeros(kFuzzBlockSize, '\0'), ab(kFuzzBlockSize, '\xab'),
      cd(kRoCdLength, '\xcd');
  while (n > 0) {
    const std::string* run;
    uint64_t end;
    if (offset < kFuzzBlockSize) {
      run = &ab, end = kFuzzBlockSize;
    } else if (offset < kRoCdOffset) {
      run = &zeros, end = kRoCdOffset;
    } else if (offset < kRoCdOffset + kRoCdLength) {
      run = &cd, end = kRoCdOffset + kRoCdLength;
    } else {
      run = &zeros, end = UINT64_MAX;
    }
    size_t len = std::min<uint64_t>({n, end - offset, run->size()});
    if (std::memcmp(p, run->data(), len) != 0) return false;
    p += len;
    offset += len;
    n -= len;
  }
  return true;
}
bool RoZero(uint64_t offset, uint64_t length) {
  return offset >= kFuzzBlockSize &&
         (offset + length <= kRoCdOffset || offset >= kRoCdOffset + kRoCdLength);
}

WorkerPool* pool = nullptr;
std::shared_ptr<testing::MemVolume> ro_shared;  // never written: shared by all inputs

// One complete request of the input, and what its reply has shown so far.
struct Expected {
  RequestHeader h;
  uint32_t validation = 0;  // ValidateRequest's verdict
  bool done = false;
  bool error = false;
  uint64_t covered = 0;  // READ: bytes described by data and hole chunks
  int status_chunks = 0;
};

struct Session {
  bool structured = false;
  bool read_only = false;
  bool allocation = false;
  bool fault = false;
  ExportLimits limits;
};

// Parses the server's output as it is written (under ReplyWriter's send mutex, so
// one writer at a time) and checks every reply against `requests`.
class ReplyChecker {
 public:
  ReplyChecker(std::vector<Expected>& requests, const Session& s) : requests_(requests), s_(s) {}

  void Feed(const char* p, size_t n) {
    for (;;) {
      if (skip_ > 0) {
        if (n == 0) return;
        size_t take = std::min<uint64_t>(skip_, n);
        if (verify_ && !RoMatches(p, data_offset_, take))
          Fail("READ of \"ro\" returned wrong data", cookie_);
        data_offset_ += take;
        skip_ -= take;
        p += take;
        n -= take;
        continue;
      }
      size_t need = Need();
      if (buf_.size() == need) {
        Parse();
        buf_.clear();
        continue;
      }
      if (n == 0) return;
      size_t take = std::min(need - buf_.size(), n);
      buf_.append(p, take);
      p += take;
      n -= take;
    }
  }

  // At the end of the session: nothing half sent, and (unless the client vanished)
  // every request answered.
  void Finish(bool client_vanished) {
    if (!buf_.empty() || skip_ != 0) Fail("the output ends inside a reply", cookie_);
    if (client_vanished) return;
    for (const Expected& r : requests_) {
      if (!r.done) Fail("a request got no (complete) reply", r.h.cookie);
    }
  }

 private:
  // Bytes of the message at buf_ needed before it can be parsed (the data of READ
  // replies is skipped, not buffered).
  size_t Need() const {
    if (buf_.size() < 4) return 4;
    uint32_t magic = GetBe32(buf_.data());
    if (magic == kSimpleReplyMagic) return kSimpleReplyHeaderSize;
    if (magic != kStructuredReplyMagic) Fail("bad reply magic");
    if (buf_.size() < kChunkHeaderSize) return kChunkHeaderSize;
    uint16_t type = GetBe16(buf_.data() + 6);
    uint32_t length = GetBe32(buf_.data() + 16);
    if (type == kReplyTypeOffsetData) return kChunkHeaderSize + 8;
    if (length > (1u << 20)) Fail("chunk payload implausibly long", GetBe64(buf_.data() + 8));
    return kChunkHeaderSize + length;
  }

  Expected& Lookup(uint64_t cookie) {
    if (cookie == 0 || cookie > requests_.size()) Fail("reply with a cookie never sent", cookie);
    Expected& r = requests_[cookie - 1];
    if (r.done) Fail("second reply to a request", cookie);
    return r;
  }

  // A request may succeed only if this holds, whatever the server thinks of it.
  void CheckSuccessAllowed(const Expected& r) {
    const RequestHeader& h = r.h;
    bool write = h.type == kCmdWrite || h.type == kCmdTrim || h.type == kCmdWriteZeroes;
    if (h.type > kCmdBlockStatus || h.type == kCmdDisc) Fail("unknown command succeeded", h.cookie);
    if (write && s_.read_only) Fail("write to a read-only export succeeded", h.cookie);
    if (h.type != kCmdFlush &&
        (h.offset > s_.limits.size || h.length > s_.limits.size - h.offset)) {
      Fail("request beyond the end of the export succeeded", h.cookie);
    }
    if (h.type == kCmdBlockStatus && !s_.allocation)
      Fail("BLOCK_STATUS without a context succeeded", h.cookie);
    if (r.validation != 0) Fail("request ValidateRequest rejects succeeded", h.cookie);
  }

  void CheckError(const Expected& r, uint32_t error) {
    if (error == 0) Fail("error reply with error 0", r.h.cookie);
    if (r.validation != 0) {
      if (error != r.validation) Fail("invalid request answered with another error", r.h.cookie);
    } else if (!(s_.fault && r.h.type != kCmdCache && error == kEio)) {
      Fail("valid request failed", r.h.cookie);
    }
  }

  void Parse() {
    const char* b = buf_.data();
    uint64_t cookie = GetBe64(b + 8);
    cookie_ = cookie;
    Expected& r = Lookup(cookie);
    if (GetBe32(b) == kSimpleReplyMagic) {
      if (s_.structured && (r.h.type == kCmdRead || r.h.type == kCmdBlockStatus)) {
        Fail("simple reply to READ or BLOCK_STATUS with structured replies", cookie);
      }
      if (s_.structured && r.error) Fail("simple reply after an error chunk", cookie);
      uint32_t error = GetBe32(b + 4);
      if (error != 0) {
        CheckError(r, error);
      } else {
        CheckSuccessAllowed(r);
        if (r.h.type == kCmdRead) {
          skip_ = r.h.length;
          data_offset_ = r.h.offset;
          verify_ = s_.read_only;
        }
      }
      r.done = true;
      return;
    }

    if (!s_.structured) Fail("structured chunk without structured replies", cookie);
    uint16_t flags = GetBe16(b + 4);
    uint16_t type = GetBe16(b + 6);
    uint32_t length = GetBe32(b + 16);
    const char* payload = b + kChunkHeaderSize;
    if (flags & ~kReplyFlagDone) Fail("unknown chunk flags", cookie);
    switch (type) {
      case kReplyTypeNone:
        if (length != 0 || !(flags & kReplyFlagDone))
          Fail("NONE chunk with data or without DONE", cookie);
        break;
      case kReplyTypeOffsetData:
      case kReplyTypeOffsetHole: {
        if (r.h.type != kCmdRead) Fail("data chunk for a request other than READ", cookie);
        if (r.error) Fail("data chunk after an error chunk", cookie);
        uint64_t offset = GetBe64(payload);
        uint64_t n;
        if (type == kReplyTypeOffsetData) {
          if (length <= 8) Fail("OFFSET_DATA without data", cookie);
          n = length - 8;
          skip_ = n;
          data_offset_ = offset;
          verify_ = s_.read_only;
        } else {
          if (length != 12) Fail("OFFSET_HOLE of the wrong length", cookie);
          n = GetBe32(payload + 8);
          if (n == 0) Fail("empty OFFSET_HOLE", cookie);
          if (s_.read_only && !RoZero(offset, n)) Fail("hole over data of \"ro\"", cookie);
        }
        // This server sends a READ's chunks in order.
        if (offset != r.h.offset + r.covered || n > r.h.length - r.covered) {
          Fail("data chunk outside the READ's range or out of order", cookie);
        }
        r.covered += n;
        break;
      }
      case kReplyTypeBlockStatus: {
        if (r.h.type != kCmdBlockStatus) Fail("BLOCK_STATUS chunk for another command", cookie);
        if (r.error || r.status_chunks > 0)
          Fail("second BLOCK_STATUS chunk or after an error", cookie);
        if (length < 12 || (length - 4) % 8 != 0)
          Fail("BLOCK_STATUS chunk of a bad length", cookie);
        if (GetBe32(payload) != kAllocationContextId)
          Fail("BLOCK_STATUS for an unknown context", cookie);
        uint32_t count = (length - 4) / 8;
        if ((r.h.flags & kCmdFlagReqOne) && count != 1)
          Fail("REQ_ONE answered with several extents", cookie);
        uint64_t sum = 0;
        for (uint32_t i = 0; i < count; ++i) {
          uint32_t len = GetBe32(payload + 4 + 8 * i);
          uint32_t state = GetBe32(payload + 8 + 8 * i);
          if (len == 0) Fail("empty BLOCK_STATUS extent", cookie);
          if (state & ~(kStateHole | kStateZero)) Fail("unknown allocation state bits", cookie);
          if (s_.read_only && (state & kStateZero) && !RoZero(r.h.offset + sum, len)) {
            Fail("BLOCK_STATUS reports zeros over data of \"ro\"", cookie);
          }
          sum += len;
        }
        if (sum > r.h.length) Fail("BLOCK_STATUS extents beyond the requested range", cookie);
        r.status_chunks++;
        break;
      }
      case kReplyTypeError: {
        if (length < 6) Fail("ERROR chunk too short", cookie);
        uint32_t error = GetBe32(payload);
        uint16_t message = GetBe16(payload + 4);
        if (6u + message != length) Fail("ERROR chunk's message length disagrees", cookie);
        if (r.error) Fail("second ERROR chunk", cookie);
        CheckError(r, error);
        r.error = true;
        break;
      }
      default: Fail("chunk of a type this server never sends", cookie);
    }
    if (flags & kReplyFlagDone) {
      if (!r.error) {
        CheckSuccessAllowed(r);
        if (r.h.type == kCmdRead && r.covered != r.h.length)
          Fail("READ reply does not cover the range", cookie);
        if (r.h.type == kCmdBlockStatus && r.status_chunks != 1)
          Fail("BLOCK_STATUS without extents", cookie);
      }
      r.done = true;
    }
  }

  std::vector<Expected>& requests_;
  const Session& s_;
  std::string buf_;           // the message being assembled (headers and short payloads)
  uint64_t skip_ = 0;         // READ data still to come
  uint64_t data_offset_ = 0;  // export offset of the next data byte
  bool verify_ = false;       // compare data with "ro"'s contents
  uint64_t cookie_ = 0;
};

// Frames the client's request stream by the protocol's rules (its own loop, not the
// server's), gives each complete request a unique cookie (1, 2, ...) in
// `stream`, and says how the session must end. ValidateRequest's verdicts are
// filled in once the export is negotiated.
struct Framing {
  std::vector<Expected> requests;
  uint64_t headers = 0;         // request headers with a good magic, DISC included
  bool disconnect = false;      // ends with NBD_CMD_DISC
  bool protocol_error = false;  // a bad magic, or a WRITE longer than any we take
};
Framing Frame(std::string& stream) {
  Framing f;
  size_t pos = 0;
  while (stream.size() - pos >= kRequestHeaderSize) {
    char* p = stream.data() + pos;
    RequestHeader h;
    if (!DecodeRequestHeader(p, &h)) {
      f.protocol_error = true;
      break;
    }
    f.headers++;
    PutBe64(p + 8, 0);
    pos += kRequestHeaderSize;
    if (h.type == kCmdDisc) {
      f.disconnect = true;
      break;
    }
    if (h.type == kCmdWrite) {
      if (h.length > kMaxPayload) {
        f.protocol_error = true;
        break;
      }
      if (h.length > stream.size() - pos) break;  // the client left mid-payload
      pos += h.length;
    }
    h.cookie = f.requests.size() + 1;
    PutBe64(p + 8, h.cookie);
    f.requests.push_back({h});
  }
  return f;
}

std::string ClientPrefix(uint8_t config, const std::string& name) {
  bool structured = config & kReqStructured;
  bool export_name = config & kReqExportName;
  // EXPORT_NAME's reply is padded with 124 zeroes unless NO_ZEROES: try both.
  uint32_t flags = kClientFlagFixedNewstyle | (export_name && structured ? 0 : kClientFlagNoZeroes);
  std::string p = Be32(flags);
  if (structured) {
    p += Option(kOptStructuredReply);
    if (config & kReqMetaContext)
      p += Option(kOptSetMetaContext, MetaData(name, {kBaseAllocation}));
  }
  if (export_name) {
    p += Option(kOptExportName, name);
  } else {
    p += Option(kOptGo, InfoData(name, {kInfoBlockSize, kInfoName}));
  }
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  ::signal(SIGPIPE, SIG_IGN);
  pool = new WorkerPool(2, 32);
  ro_shared = std::make_shared<testing::MemVolume>("ro", kFuzzVolumeSize, kFuzzBlockSize,
                                                   /*read_only=*/true);
  ro_shared->Fill(0, kFuzzBlockSize, static_cast<char>(0xab));
  ro_shared->Fill(kRoCdOffset, kRoCdLength, static_cast<char>(0xcd));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t config = data[0], cut_code = data[1];
  std::string stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  testing::MemExportProvider provider;
  auto disk = std::make_shared<testing::MemVolume>("disk", kFuzzVolumeSize, kFuzzBlockSize);
  if (config & kReqFault) disk->InjectFault(kFaultOffset, 4096, Status::IOError("injected"));
  provider.Add(disk);
  provider.Add(ro_shared);

  std::string name = (config & kReqReadOnly) ? "ro" : "disk";
  std::string prefix = ClientPrefix(config, name);
  size_t chunk = (config & kReqChunked) ? ((config & kReqSmallReads) ? 1 : 13) : 0;
  Framing framing = Frame(stream);
  std::string wire = prefix + stream;
  auto owned = std::make_unique<MemTransport>(wire, chunk, SIZE_MAX, [](const char*, size_t) {});
  MemTransport* mem = owned.get();
  std::unique_ptr<Transport> transport = std::move(owned);

  // The handshake reads exactly the prefix and must hand over the export.
  HandshakeConfig hs_config{&provider, nullptr, std::chrono::milliseconds(1000)};
  Result<NegotiatedExport> negotiated = Handshake(transport, -1, hs_config, "fuzz").Run();
  if (!negotiated.ok() || !negotiated->volume || mem->consumed() != prefix.size()) {
    Fail("the handshake prefix did not negotiate the export");
  }
  NegotiatedExport& exp = *negotiated;
  Session s;
  s.structured = exp.structured_replies;
  s.read_only = exp.volume->read_only();
  s.allocation = exp.allocation_context;
  s.fault = (config & kReqFault) && !s.read_only;
  s.limits = {exp.size, exp.transmission_flags, exp.structured_replies, exp.allocation_context};
  if (s.structured != bool(config & kReqStructured) || s.read_only != (name == "ro") ||
      s.allocation != ((config & kReqStructured) && (config & kReqMetaContext)) ||
      exp.size != kFuzzVolumeSize) {
    Fail("the handshake negotiated something else");
  }
  for (Expected& r : framing.requests) r.validation = ValidateRequest(r.h, s.limits);

  // The request stream: every reply goes through the checker.
  ReplyChecker checker(framing.requests, s);
  size_t cut = (cut_code & kReqCut) ? (cut_code & 0x7f) * size_t{61} : SIZE_MAX;
  mem->Redirect([&checker](const char* p, size_t n) { checker.Feed(p, n); }, cut);

  TransmissionLimits limits;
  if (config & kReqTightLimits) limits = {2, 128 * 1024, 256 * 1024};
  Transmission::Outcome outcome;
  {
    Transmission transmission(*transport, -1, exp, *pool, limits, "fuzz");
    outcome = transmission.Run();
  }
  checker.Finish(mem->gone());
  if (!mem->gone()) {
    if (outcome.status.ok() == framing.protocol_error) Fail("session ended with the wrong status");
    if (outcome.disconnect_requested != framing.disconnect) Fail("NBD_CMD_DISC seen differently");
    if (outcome.requests != framing.headers) Fail("request count differs");
  }

  // What Connection does after the transmission phase.
  if (!s.read_only) (void)exp.volume->Flush();
  provider.ReleaseExport(exp.name, exp.volume);
  if (provider.opens() != 1 || provider.releases() != 1) Fail("export opened or released twice");
  return 0;
}
