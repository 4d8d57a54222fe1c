// Writes seed inputs for the fuzzers; the output is committed under fuzz/corpus/.
//   make_seed_corpus [format] DIR   valid encodings of each metadata object for format_fuzz
//                                   (the first byte selects the decoder, as in format_fuzz.cc;
//                                   volume ids are random, so each run differs)
//   make_seed_corpus nbd_handshake DIR    client handshakes for nbd_handshake_fuzz
//   make_seed_corpus nbd_request DIR      request streams for nbd_request_fuzz
// The NBD seeds are the same bytes on every run (nbd_fuzz.h has the encoders).
#include <fstream>
#include <string>

#include "nbd/handshake.h"
#include "nbd_fuzz.h"
#include "volume/format.h"

using namespace skerry::volume;

static void Write(const std::string& dir, const std::string& name, char selector, const std::string& bytes) {
  std::ofstream(dir + "/" + name, std::ios::binary) << selector << bytes;
}

namespace nbd_seeds {
using namespace skerry::nbd;
using namespace skerry::nbd::fuzz;

constexpr uint32_t kFlags = kClientFlagFixedNewstyle | kClientFlagNoZeroes;

// Handshake seeds: config byte (nbd_handshake_fuzz.cc), then what the client sends.
void Handshake(const std::string& dir) {
  auto seed = [&](const std::string& name, uint8_t config, const std::string& bytes) {
    Write(dir, name, static_cast<char>(config), bytes);
  };
  std::string structured = Option(kOptStructuredReply);
  seed("go", 0,
       Be32(kFlags) + structured + Option(kOptSetMetaContext, MetaData("disk", {kBaseAllocation})) +
           Option(kOptGo, InfoData("disk", {kInfoName, kInfoBlockSize, kInfoDescription})));
  seed("info-then-go-readonly", 0,
       Be32(kFlags) + Option(kOptInfo, InfoData("disk@gold", {kInfoBlockSize})) +
           Option(kOptGo, InfoData("disk@gold")));
  seed("list-then-abort", 0, Be32(kFlags) + Option(kOptList) + Option(kOptAbort));
  seed("list-meta-contexts", 0,
       Be32(kFlags) + structured + Option(kOptListMetaContext, MetaData("disk", {})) +
           Option(kOptListMetaContext, MetaData("disk", {"base:", "qemu:dirty-bitmap:x"})) +
           Option(kOptSetMetaContext, MetaData("disk", {"qemu:allocation-depth"})) +
           Option(kOptAbort));
  seed("meta-context-before-structured", 0,
       Be32(kFlags) + Option(kOptSetMetaContext, MetaData("disk", {kBaseAllocation})) +
           Option(kOptGo, InfoData("disk")));
  seed("starttls-refused", 0,
       Be32(kFlags) + Option(kOptStartTls) + Option(kOptList) + Option(kOptAbort));
  seed("tls-required", kHsTlsRequired,
       Be32(kFlags) + Option(kOptList) + Option(kOptGo, InfoData("disk")) + Option(kOptStartTls));
  seed("tls-required-export-name", kHsTlsRequired, Be32(kFlags) + Option(kOptExportName, "disk"));
  seed("tls-optional-starttls", kHsTlsOptional, Be32(kFlags) + Option(kOptStartTls));
  seed("export-name-zero-padded", 0,
       Be32(kClientFlagFixedNewstyle) + Option(kOptExportName, "disk"));
  seed("export-name-unknown", 0, Be32(kFlags) + Option(kOptExportName, "nope"));
  seed("oldstyle-client", 0, Be32(0) + Option(kOptExportName, "disk@gold"));
  seed("go-unknown-export", 0,
       Be32(kFlags) + Option(kOptGo, InfoData("nope")) +
           Option(kOptInfo, std::string("\0\0\0\xff", 4)) + Option(99, "data") +
           Option(kOptStructuredReply, "x") + Option(kOptList, "x") + Option(kOptAbort));
  seed("bad-magic", 0, Be32(kFlags) + std::string(16, 'x'));
  seed("unknown-client-flags", 0, Be32(kFlags | 0x100) + Option(kOptList));
  seed("giant-option", 0, Be32(kFlags) + Be64(kOptionMagic) + Be32(kOptGo) + Be32(0xffffffffu));
  seed("short-option-then-close", 1 << 2,
       Be32(kFlags) + Be64(kOptionMagic) + Be32(kOptGo) + Be32(100) + "abc");
  std::string many = Be32(kFlags);
  for (int i = 0; i <= kMaxOptions; ++i) many += Option(99);
  seed("too-many-options", 0, many);
  seed("client-vanishes", 3 << 4,
       Be32(kFlags) + Option(kOptList) + Option(kOptList) + Option(kOptGo, InfoData("disk")));
}

// Request seeds: two config bytes (nbd_fuzz.h), then the request stream. Cookies are
// rewritten by the fuzzer, so all are 0 here.
void Requests(const std::string& dir) {
  auto seed = [&](const std::string& name, uint8_t config, uint8_t cut, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary)
        << static_cast<char>(config) << static_cast<char>(cut) << bytes;
  };
  const std::string block(512, 'w');
  const std::string disc = Request(kCmdDisc, 0, 0);
  const uint8_t full = kReqStructured | kReqMetaContext;

  // Every command once, structured replies with base:allocation.
  std::string tour =
      Request(kCmdWrite, 0, 512) + block + Request(kCmdRead, 0, 4096) +
      Request(kCmdRead, 0, 256 * 1024) +  // sparse: data and hole chunks
      Request(kCmdRead, 4096, 512, kCmdFlagDf) + Request(kCmdRead, 0, 0) +
      Request(kCmdFlush, 0, 0) + Request(kCmdBlockStatus, 0, 1 << 20) +
      Request(kCmdBlockStatus, 0, 1 << 20, kCmdFlagReqOne) +
      Request(kCmdWrite, 70000, 512, kCmdFlagFua) + block +
      Request(kCmdTrim, 64 * 1024, 64 * 1024) + Request(kCmdTrim, 0, 100, kCmdFlagFua) +
      Request(kCmdWriteZeroes, 128 * 1024, 64 * 1024, kCmdFlagNoHole) +
      Request(kCmdWriteZeroes, 256 * 1024, 65536 + 512, kCmdFlagFastZero) +
      Request(kCmdCache, 0, 1 << 20) + Request(kCmdBlockStatus, 0, 512 * 1024) + disc;
  seed("tour-structured", full, 0, tour);
  seed("tour-simple", 0, 0, tour);
  seed("tour-export-name", full | kReqExportName, 0, tour);
  seed("tour-chunked", full | kReqChunked, 0, tour);
  seed("tour-tight-limits", full | kReqTightLimits, 0, tour);
  seed("tour-client-vanishes", full, kReqCut | 3, tour);

  // The read-only export: writes refused, reads of known contents.
  std::string ro = Request(kCmdWrite, 0, 512) + block + Request(kCmdTrim, 0, 4096) +
                   Request(kCmdWriteZeroes, 0, 4096) + Request(kCmdRead, 0, 1 << 20) +
                   Request(kCmdRead, 131000, 4000) + Request(kCmdBlockStatus, 0, 1 << 20) +
                   Request(kCmdFlush, 0, 0) + disc;
  seed("readonly-structured", full | kReqReadOnly, 0, ro);
  seed("readonly-simple", kReqReadOnly, 0, ro);

  // Requests the server must refuse, then a bad magic.
  std::string bad = Request(42, 0, 0) + Request(kCmdRead, 0, 4096, kCmdFlagNoHole) +
                    Request(kCmdRead, (1 << 20) - 100, 4096) +
                    Request(kCmdWrite, (1 << 20) - 100, 200) + std::string(200, 'p') +
                    Request(kCmdFlush, 4096, 0) + Request(kCmdBlockStatus, 0, 0) +
                    Request(kCmdRead, 0, kMaxPayload + 1) + Request(kCmdRead, ~0ull - 10, 100) +
                    Request(kCmdWriteZeroes, 0, 4096, kCmdFlagDf) + std::string(28, 'x');
  seed("invalid-requests-structured", full, 0, bad);
  seed("invalid-requests-simple", 0, 0, bad);
  seed("block-status-without-context", kReqStructured, 0,
       Request(kCmdBlockStatus, 0, 4096) + Request(kCmdRead, 0, 4096) + disc);
  seed("oversized-write", full, 0, Request(kCmdWrite, 0, 64u << 20) + block);
  seed("write-cut-short", full, 0, Request(kCmdWrite, 0, 8192) + block);

  // EIO at kFaultOffset: reads, writes, zeroing and flushes through it.
  std::string faulty =
      Request(kCmdRead, kFaultOffset, 4096) + Request(kCmdRead, 128 * 1024, 128 * 1024) +
      Request(kCmdWrite, kFaultOffset, 512) + block +
      Request(kCmdWriteZeroes, kFaultOffset - 4096, 8192) + Request(kCmdFlush, 0, 0) +
      Request(kCmdBlockStatus, 0, 1 << 20) + Request(kCmdRead, 0, 4096) + disc;
  seed("faults-structured", full | kReqFault, 0, faulty);
  seed("faults-simple", kReqFault, 0, faulty);

  // A pipelined burst: 64 KiB reads and 512-byte writes, some FUA; chunked, tight limits.
  std::string burst;
  for (int i = 0; i < 16; ++i) {
    burst += Request(kCmdWrite, i * 4096, 512, i % 5 == 0 ? kCmdFlagFua : 0) + block;
    burst += Request(kCmdRead, (i % 16) * 65536, 65536);
  }
  seed("burst", full | kReqTightLimits | kReqChunked, 0, burst);
  seed("burst-simple", 0, 0, burst);
}

}  // namespace nbd_seeds

int main(int argc, char** argv) {
  std::string mode = argc > 2 ? argv[1] : "format";
  std::string dir = argc > 2 ? argv[2] : argc > 1 ? argv[1] : ".";
  if (mode == "nbd_handshake") {
    nbd_seeds::Handshake(dir);
    return 0;
  }
  if (mode == "nbd_request") {
    nbd_seeds::Requests(dir);
    return 0;
  }
  if (mode != "format") return 2;
  Header h;
  h.id = VolumeId::Random();
  h.size = 1ull << 30;
  h.block_size = 4 << 20;
  h.chunks.resize(1);
  h.chunks[0] = ChunkRef{h.id, 1};
  SnapshotEntry s;
  s.id = 1;
  s.epoch = 1;
  s.size = h.size;
  s.name = "gold";
  s.children = {VolumeId::Random()};
  h.snapshots.push_back(s);
  h.epoch = 2;
  Write(dir, "header", 0, EncodeHeader(h));
  Chunk c;
  c.owner = h.id;
  c.epoch = 1;
  c.entries.resize(8);
  c.entries[1] = Entry::Private(h.id, 1);
  c.entries[2].kind = Entry::Kind::kContent;
  Write(dir, "chunk", 1, EncodeChunk(c));
  SnapshotRecord r;
  r.volume = h.id;
  r.id = 1;
  r.epoch = 1;
  r.size = h.size;
  r.block_size = h.block_size;
  r.chunks = h.chunks;
  Write(dir, "snapshot", 2, EncodeSnapshotRecord(r));
  Directory d;
  d.entries = {{"debian-12", h.id}, {"vm-0001", VolumeId::Random()}};
  Write(dir, "directory", 3, EncodeDirectory(d));
  return 0;
}
