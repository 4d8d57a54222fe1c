// Pure pieces of the protocol layer: request validation, extent runs, the error
// mapping and the PSK file parser.
#include "nbd/request.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "nbd/errors.h"
#include "nbd/handshake.h"
#include "nbd/request_executor.h"
#include "nbd/tls.h"

namespace skerry::nbd {
namespace {

ExportLimits Writable(uint64_t size = 1 << 20) {
  return {size, TransmissionFlagsFor(false, true), true, true};
}

uint32_t Check(uint16_t type, uint64_t offset, uint32_t length, uint16_t flags = 0,
               ExportLimits limits = Writable()) {
  RequestHeader h;
  h.type = type;
  h.offset = offset;
  h.length = length;
  h.flags = flags;
  return ValidateRequest(h, limits);
}

TEST(ValidateRequest, Ranges) {
  EXPECT_EQ(Check(kCmdRead, 0, 1 << 20), 0u);
  EXPECT_EQ(Check(kCmdRead, 1, 1 << 20), kEinval);
  EXPECT_EQ(Check(kCmdRead, 1 << 20, 0), 0u);
  EXPECT_EQ(Check(kCmdRead, (1 << 20) + 1, 0), kEinval);
  EXPECT_EQ(Check(kCmdRead, ~0ull, 2), kEinval);
  EXPECT_EQ(Check(kCmdWrite, 1 << 20, 1), kEnospc);
  EXPECT_EQ(Check(kCmdWriteZeroes, 1 << 20, 1), kEnospc);
  EXPECT_EQ(Check(kCmdTrim, 1 << 20, 1), kEinval);
  EXPECT_EQ(Check(kCmdCache, 1 << 20, 1), kEinval);
  EXPECT_EQ(Check(kCmdBlockStatus, 1 << 20, 1), kEinval);
}

TEST(ValidateRequest, Lengths) {
  ExportLimits big = Writable(1ull << 40);
  EXPECT_EQ(Check(kCmdRead, 0, kMaxPayload, 0, big), 0u);
  EXPECT_EQ(Check(kCmdRead, 0, kMaxPayload + 1, 0, big), kEoverflow);
  big.structured_replies = false;
  EXPECT_EQ(Check(kCmdRead, 0, kMaxPayload + 1, 0, big), kEinval);
  EXPECT_EQ(Check(kCmdWrite, 0, kMaxPayload + 1, 0, big), kEinval);
  // Commands without payload may be as long as the export.
  EXPECT_EQ(Check(kCmdWriteZeroes, 0, 0xffffffffu, 0, big), 0u);
  EXPECT_EQ(Check(kCmdTrim, 0, 0xffffffffu, 0, big), 0u);
  EXPECT_EQ(Check(kCmdBlockStatus, 0, 0xffffffffu, 0, big), 0u);
}

TEST(ValidateRequest, Flags) {
  EXPECT_EQ(Check(kCmdWrite, 0, 1, kCmdFlagFua), 0u);
  EXPECT_EQ(Check(kCmdRead, 0, 1, kCmdFlagFua), 0u);
  EXPECT_EQ(Check(kCmdRead, 0, 1, kCmdFlagDf), 0u);
  EXPECT_EQ(Check(kCmdWrite, 0, 1, kCmdFlagDf), kEinval);
  EXPECT_EQ(Check(kCmdWriteZeroes, 0, 1, kCmdFlagNoHole | kCmdFlagFastZero | kCmdFlagFua), 0u);
  EXPECT_EQ(Check(kCmdTrim, 0, 1, kCmdFlagNoHole), kEinval);
  EXPECT_EQ(Check(kCmdBlockStatus, 0, 1, kCmdFlagReqOne), 0u);
  EXPECT_EQ(Check(kCmdRead, 0, 1, kCmdFlagReqOne), kEinval);
  EXPECT_EQ(Check(kCmdRead, 0, 1, 1 << 7), kEinval);
  ExportLimits simple = Writable();
  simple.transmission_flags = TransmissionFlagsFor(false, false);
  simple.structured_replies = false;
  EXPECT_EQ(Check(kCmdRead, 0, 1, kCmdFlagDf, simple), kEinval);
}

TEST(ValidateRequest, ReadOnlyAndCommands) {
  ExportLimits ro = {1 << 20, TransmissionFlagsFor(true, true), true, false};
  EXPECT_EQ(Check(kCmdWrite, 0, 1, 0, ro), kEperm);
  EXPECT_EQ(Check(kCmdWrite, 0, 1, kCmdFlagFua, ro), kEperm);  // FUA not advertised: still EPERM
  EXPECT_EQ(Check(kCmdTrim, 0, 1, 0, ro), kEperm);
  EXPECT_EQ(Check(kCmdWriteZeroes, 1 << 30, 1, 0, ro), kEperm);
  EXPECT_EQ(Check(kCmdRead, 0, 1, kCmdFlagFua, ro), kEinval);
  EXPECT_EQ(Check(kCmdFlush, 0, 0, 0, ro), 0u);
  EXPECT_EQ(Check(kCmdBlockStatus, 0, 1, 0, ro), kEinval);  // no context selected
  EXPECT_EQ(Check(kCmdFlush, 0, 1), kEinval);
  EXPECT_EQ(Check(8, 0, 0), kEinval);
  EXPECT_EQ(Check(0xffff, 0, 0), kEinval);
}

TEST(TransmissionFlags, WhatIsAdvertised) {
  uint16_t rw = TransmissionFlagsFor(false, false);
  EXPECT_EQ(rw, kTxHasFlags | kTxSendFlush | kTxSendFua | kTxSendTrim | kTxSendWriteZeroes |
                    kTxSendFastZero | kTxSendCache | kTxCanMultiConn);
  EXPECT_EQ(TransmissionFlagsFor(false, true), rw | kTxSendDf);
  EXPECT_EQ(TransmissionFlagsFor(true, false),
            kTxHasFlags | kTxReadOnly | kTxSendFlush | kTxSendCache | kTxCanMultiConn);
}

TEST(ExtentsToRuns, MergesClipsAndFillsGaps) {
  std::vector<StatusRun> runs;
  auto as_tuples = [&] {
    std::vector<std::tuple<uint64_t, uint64_t, uint32_t>> t;
    for (const StatusRun& r : runs) t.emplace_back(r.offset, r.length, r.state);
    return t;
  };
  using T = std::vector<std::tuple<uint64_t, uint64_t, uint32_t>>;
  // Two holes merge; data after; the extents overhang the request on both sides.
  ExtentsToRuns({{0, 100, true, true}, {100, 100, true, true}, {200, 300, false, false}}, 50, 400,
                kStateHole | kStateZero, &runs);
  EXPECT_EQ(as_tuples(), (T{{50, 150, kStateHole | kStateZero}, {200, 200, 0}}));
  // A gap and a short answer count as data.
  ExtentsToRuns({{0, 10, true, false}, {20, 10, false, true}}, 0, 50, kStateHole | kStateZero,
                &runs);
  EXPECT_EQ(as_tuples(),
            (T{{0, 10, kStateHole | kStateZero}, {10, 10, 0}, {20, 10, kStateZero}, {30, 20, 0}}));
  // The read mask folds hole and zero together.
  ExtentsToRuns({{0, 10, true, true}, {10, 10, false, true}}, 0, 20, kStateZero, &runs);
  EXPECT_EQ(as_tuples(), (T{{0, 20, kStateZero}}));
  // Garbage: out of order, empty, beyond the end, overflowing.
  ExtentsToRuns({{30, 0, true, true}, {40, ~0ull, true, true}, {0, 10, false, false}}, 0, 50,
                kStateHole | kStateZero, &runs);
  EXPECT_EQ(as_tuples(), (T{{0, 40, 0}, {40, 10, kStateHole | kStateZero}}));
  ExtentsToRuns({}, 5, 6, kStateZero, &runs);
  EXPECT_EQ(as_tuples(), (T{{5, 1, 0}}));
}

TEST(Errors, StatusToNbdError) {
  EXPECT_EQ(NbdErrorFromStatus(Status::ReadOnly("x")), kEperm);
  EXPECT_EQ(NbdErrorFromStatus(Status::InvalidArgument("x")), kEinval);
  EXPECT_EQ(NbdErrorFromStatus(Status::NoSpace("x")), kEnospc);
  EXPECT_EQ(NbdErrorFromStatus(Status::NotSupported("x")), kEnotsup);
  EXPECT_EQ(NbdErrorFromStatus(Status::IOError("x")), kEio);
  EXPECT_EQ(NbdErrorFromStatus(Status::Corruption("x")), kEio);
  EXPECT_EQ(NbdErrorFromStatus(Status::NotFound("x")), kEio);
  EXPECT_EQ(NbdErrorFromStatus(Status::Busy("x")), kEio);
  EXPECT_EQ(NbdErrorFromStatus(Status::TimedOut("x")), kEio);
  EXPECT_EQ(NbdErrorFromStatus(Status::FromErrno(EDQUOT, "x")), kEnospc);
  EXPECT_EQ(NbdErrorFromStatus(Status::FromErrno(EFBIG, "x")), kEnospc);
  EXPECT_EQ(NbdErrorFromStatus(Status::FromErrno(ENOMEM, "x")), kEnomem);
  EXPECT_EQ(NbdErrorFromStatus(Status::FromErrno(EOVERFLOW, "x")), kEoverflow);
  EXPECT_EQ(NbdErrorFromStatus(Status::FromErrno(ESHUTDOWN, "x")), kEshutdown);
  EXPECT_EQ(NbdErrorFromStatus(Status::FromErrno(EACCES, "x")), kEperm);
}

TEST(PskFile, Parses) {
  auto keys = ParsePskFile("# comment\nalice:00ff10\r\n\nbob:ABCDEF\n");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_EQ(keys->at("alice"), (std::vector<unsigned char>{0x00, 0xff, 0x10}));
  EXPECT_EQ(keys->at("bob"), (std::vector<unsigned char>{0xab, 0xcd, 0xef}));
  EXPECT_FALSE(ParsePskFile("").ok());
  EXPECT_FALSE(ParsePskFile("alice\n").ok());
  EXPECT_FALSE(ParsePskFile("alice:abc\n").ok());
  EXPECT_FALSE(ParsePskFile("alice:zz\n").ok());
  EXPECT_FALSE(ParsePskFile(":00\n").ok());
}

TEST(TlsContext, RefusesModesWithoutCredentials) {
  TlsOptions options;
  options.mode = TlsMode::kRequired;
  EXPECT_FALSE(TlsContext::Create(options).ok());
  options.cert_file = "/nonexistent/cert.pem";
  EXPECT_FALSE(TlsContext::Create(options).ok());  // no key
  options.key_file = "/nonexistent/key.pem";
  EXPECT_FALSE(TlsContext::Create(options).ok());  // unreadable
  options = {};
  EXPECT_TRUE(TlsContext::Create(options).ok());  // off needs nothing
  EXPECT_FALSE(ParseTlsMode("maybe").ok());
  EXPECT_EQ(*ParseTlsMode("optional"), TlsMode::kOptional);
}

}  // namespace
}  // namespace skerry::nbd
