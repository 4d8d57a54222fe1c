// The transmission phase over a socketpair: every command, the checks made once
// in ValidateRequest, pipelining, and hostile input.
#include "nbd/transmission.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "nbd/protocol.h"
#include "session_harness.h"

namespace skerry::nbd::testing {
namespace {

constexpr uint64_t kDisk = 1 << 20;

// Puts a structured READ reply's OFFSET_DATA or OFFSET_HOLE chunk where it belongs in
// `data`, the read's bytes so far (the read started at `offset`); other chunks are ignored.
void PlaceChunk(const ReplyMessage& r, uint64_t offset, std::string* data) {
  if (r.type != kReplyTypeOffsetData && r.type != kReplyTypeOffsetHole) return;
  uint64_t at = GetBe64(r.payload.data()) - offset;
  std::string piece = r.type == kReplyTypeOffsetData ? r.payload.substr(8)
                                                     : std::string(GetBe32(r.payload.data() + 8), '\0');
  if (data->size() < at + piece.size()) data->resize(at + piece.size(), '?');
  data->replace(at, piece.size(), piece);
}

// A negotiated session on `name`.
struct Session {
  explicit Session(const std::string& name = "disk", bool structured = true, bool meta = true,
                   const TransmissionLimits& limits = {})
      : h(nullptr, limits) {
    auto n = h.client().Negotiate(name, structured, meta);
    EXPECT_TRUE(n);
    if (n) flags = n->flags;
  }
  RawClient& c() { return h.client(); }

  // Sends a request and returns its (single-message) reply.
  ReplyMessage Do(uint16_t type, uint64_t offset, uint32_t length, uint16_t flags = 0,
                  std::string_view payload = {}, uint32_t simple_read_length = 0) {
    uint64_t cookie = ++next_cookie;
    EXPECT_TRUE(c().SendRequest(flags, type, cookie, offset, length, payload));
    auto r = c().ReadReply(simple_read_length);
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->cookie, cookie);
    return *r;
  }

  // A structured READ: every chunk until DONE, reassembled. Holes are zeros.
  struct ReadResult {
    std::string data;
    int data_chunks = 0;
    int hole_chunks = 0;
    uint32_t error = 0;
  };
  ReadResult Read(uint64_t offset, uint32_t length, uint16_t flags = 0) {
    ReadResult out;
    out.data.assign(length, '?');
    uint64_t cookie = ++next_cookie;
    EXPECT_TRUE(c().SendRequest(flags, kCmdRead, cookie, offset, length));
    for (;;) {
      auto r = c().ReadReply();
      if (!r) {
        ADD_FAILURE() << "no reply";
        return out;
      }
      EXPECT_TRUE(r->structured);
      EXPECT_EQ(r->cookie, cookie);
      if (r->type == kReplyTypeOffsetData) {
        uint64_t at = GetBe64(r->payload.data());
        out.data.replace(at - offset, r->payload.size() - 8, r->payload.substr(8));
        out.data_chunks++;
      } else if (r->type == kReplyTypeOffsetHole) {
        uint64_t at = GetBe64(r->payload.data());
        uint32_t n = GetBe32(r->payload.data() + 8);
        out.data.replace(at - offset, n, std::string(n, '\0'));
        out.hole_chunks++;
      } else if (r->type & 0x8000) {
        out.error = r->error;
      }
      if (r->flags & kReplyFlagDone) return out;
    }
  }

  SessionHarness h;
  uint16_t flags = 0;
  uint64_t next_cookie = 0;
  std::mutex mu;     // for tests that send and receive on two threads
  int answered = 0;  // GUARDED_BY(mu)
};

TEST(Transmission, WriteThenReadBackWithSimpleReplies) {
  Session s("disk", /*structured=*/false, /*meta=*/false);
  EXPECT_FALSE(s.flags & kTxSendDf);  // DF needs structured replies
  std::string data(8192, 'x');
  EXPECT_EQ(s.Do(kCmdWrite, 4096, 8192, 0, data).error, 0u);
  auto r = s.Do(kCmdRead, 4096, 8192, 0, {}, 8192);
  EXPECT_FALSE(r.structured);
  EXPECT_EQ(r.payload, data);
  // Errors come as simple replies without payload.
  EXPECT_EQ(s.Do(kCmdRead, kDisk, 1).error, kEinval);
  EXPECT_EQ(s.Do(kCmdRead, 0, 512, kCmdFlagDf).error, kEinval);  // DF not advertised
}

TEST(Transmission, StructuredReadSendsHolesForUnallocatedRanges) {
  Session s;
  s.h.volume("disk").Fill(0, 64 * 1024, 'a');  // block 0 data, the rest holes
  auto r = s.Read(0, 256 * 1024);
  EXPECT_EQ(r.data, std::string(64 * 1024, 'a') + std::string(192 * 1024, '\0'));
  EXPECT_EQ(r.data_chunks, 1);
  EXPECT_EQ(r.hole_chunks, 1);
  // DF: one data chunk, zeros included.
  r = s.Read(0, 256 * 1024, kCmdFlagDf);
  EXPECT_EQ(r.data_chunks, 1);
  EXPECT_EQ(r.hole_chunks, 0);
  EXPECT_EQ(r.data.substr(64 * 1024), std::string(192 * 1024, '\0'));
  // Small reads are plain data.
  r = s.Read(60 * 1024, 8192);
  EXPECT_EQ(r.data_chunks, 1);
  EXPECT_EQ(r.data, std::string(4096, 'a') + std::string(4096, '\0'));
}

TEST(Transmission, ZeroLengthRequestsSucceed) {
  Session s;
  auto r = s.Do(kCmdRead, 0, 0);
  EXPECT_TRUE(r.structured);
  EXPECT_EQ(r.type, kReplyTypeNone);
  EXPECT_TRUE(r.flags & kReplyFlagDone);
  EXPECT_EQ(s.Do(kCmdWrite, kDisk, 0).error, 0u);
  EXPECT_EQ(s.Do(kCmdTrim, 0, 0).error, 0u);
}

TEST(Transmission, RangeChecks) {
  Session s;
  EXPECT_EQ(s.Read(kDisk - 512, 1024).error, kEinval);
  EXPECT_EQ(s.Read(~0ull - 10, 100).error, kEinval);  // offset + length overflows
  // A refused write's payload is consumed: the next request still parses.
  EXPECT_EQ(s.Do(kCmdWrite, kDisk - 512, 1024, 0, std::string(1024, 'w')).error, kEnospc);
  EXPECT_EQ(s.Do(kCmdWriteZeroes, kDisk, 1).error, kEnospc);
  EXPECT_EQ(s.Do(kCmdTrim, kDisk, 1).error, kEinval);
  EXPECT_EQ(s.Do(kCmdCache, kDisk + 1, 0).error, kEinval);
  EXPECT_EQ(s.Do(kCmdBlockStatus, kDisk, 1).error, kEinval);
  EXPECT_EQ(s.Do(kCmdWrite, kDisk - 512, 512, 0, std::string(512, 'w')).error, 0u);
}

TEST(Transmission, FlagAndCommandChecks) {
  Session s;
  EXPECT_EQ(s.Do(42, 0, 0).error, kEinval);                          // unknown command
  EXPECT_EQ(s.Do(kCmdRead, 0, 512, kCmdFlagNoHole).error, kEinval);  // flag of another command
  EXPECT_EQ(s.Do(kCmdWrite, 0, 0, 0x8000).error, kEinval);           // unknown flag
  EXPECT_EQ(s.Do(kCmdFlush, 4096, 0).error, kEinval);                // FLUSH takes no range
  EXPECT_EQ(s.Do(kCmdBlockStatus, 0, 0).error, kEinval);             // zero-length status
  EXPECT_EQ(s.Do(kCmdRead, 0, 4096, kCmdFlagFua).type,
            kReplyTypeOffsetData);  // FUA is fine anywhere
  EXPECT_EQ(s.Read(0, kMaxPayload + 1).error, kEoverflow);
}

TEST(Transmission, ReadOnlyExportRefusesWritesWithEperm) {
  Session s("ro");
  EXPECT_EQ(s.Do(kCmdWrite, 0, 512, 0, std::string(512, 'w')).error, kEperm);
  EXPECT_EQ(s.Do(kCmdWrite, 0, 512, kCmdFlagFua, std::string(512, 'w')).error, kEperm);
  EXPECT_EQ(s.Do(kCmdTrim, 0, 512).error, kEperm);
  EXPECT_EQ(s.Do(kCmdWriteZeroes, 0, 512).error, kEperm);
  EXPECT_EQ(s.Do(kCmdFlush, 0, 0).error, 0u);
  EXPECT_EQ(s.Read(0, 4096).data, std::string(4096, '\xab'));
}

TEST(Transmission, WriteZeroesTrimAndBlockStatus) {
  Session s;
  MemVolume& v = s.h.volume("disk");
  v.Fill(0, kDisk, 'd');
  auto status = [&](uint64_t offset, uint32_t length, uint16_t flags = 0) {
    auto r = s.Do(kCmdBlockStatus, offset, length, flags);
    EXPECT_EQ(r.type, kReplyTypeBlockStatus);
    EXPECT_EQ(GetBe32(r.payload.data()), kAllocationContextId);
    std::vector<std::pair<uint32_t, uint32_t>> d;
    for (size_t i = 4; i + 8 <= r.payload.size(); i += 8) {
      d.emplace_back(GetBe32(r.payload.data() + i), GetBe32(r.payload.data() + i + 4));
    }
    return d;
  };
  using D = std::vector<std::pair<uint32_t, uint32_t>>;
  EXPECT_EQ(status(0, kDisk), (D{{kDisk, 0}}));

  EXPECT_EQ(s.Do(kCmdWriteZeroes, 0, 64 * 1024, kCmdFlagNoHole).error, 0u);  // stays allocated
  EXPECT_EQ(s.Do(kCmdWriteZeroes, 64 * 1024, 64 * 1024, kCmdFlagFastZero).error, 0u);
  EXPECT_EQ(s.Do(kCmdTrim, 128 * 1024, 64 * 1024, kCmdFlagFua).error, 0u);
  EXPECT_EQ(
      status(0, kDisk),
      (D{{64 * 1024, kStateZero}, {128 * 1024, kStateHole | kStateZero}, {kDisk - 192 * 1024, 0}}));
  EXPECT_EQ(status(0, kDisk, kCmdFlagReqOne), (D{{64 * 1024, kStateZero}}));
  EXPECT_EQ(status(4096, 4096, kCmdFlagReqOne), (D{{4096, kStateZero}}));
  EXPECT_EQ(s.Read(0, 192 * 1024).data, std::string(192 * 1024, '\0'));
  EXPECT_GE(v.flushes(), 1u);  // TRIM+FUA flushed
}

TEST(Transmission, BlockStatusLooksAtAGibibyteAtMost) {
  Session s("big");
  s.h.volume("big").Fill((1ull << 30) + 4096, 4096, 'x');  // beyond the first GiB
  auto r = s.Do(kCmdBlockStatus, 0, 0xffffffffu);
  ASSERT_EQ(r.type, kReplyTypeBlockStatus);
  ASSERT_EQ(r.payload.size(), 4u + 8u);  // one descriptor: the first GiB is a hole
  EXPECT_EQ(GetBe32(r.payload.data() + 4), 1u << 30);
  EXPECT_EQ(GetBe32(r.payload.data() + 8), kStateHole | kStateZero);
  // The client asks again from where the answer ended, and sees the data.
  r = s.Do(kCmdBlockStatus, 1ull << 30, 128 * 1024);
  ASSERT_EQ(r.payload.size(), 4u + 8u * 2);
  EXPECT_EQ(GetBe32(r.payload.data() + 4), 64u * 1024);  // the block holding the data
  EXPECT_EQ(GetBe32(r.payload.data() + 8), 0u);
  EXPECT_EQ(GetBe32(r.payload.data() + 12), 64u * 1024);  // then a hole again
  EXPECT_EQ(GetBe32(r.payload.data() + 16), kStateHole | kStateZero);
}

TEST(Transmission, BlockStatusNeedsAContext) {
  Session s("disk", true, /*meta=*/false);
  EXPECT_EQ(s.Do(kCmdBlockStatus, 0, 4096).error, kEinval);
}

TEST(Transmission, FlushAndFuaReachTheVolume) {
  Session s;
  MemVolume& v = s.h.volume("disk");
  EXPECT_EQ(s.Do(kCmdFlush, 0, 0).error, 0u);
  EXPECT_EQ(v.flushes(), 1u);
  EXPECT_EQ(s.Do(kCmdWrite, 0, 512, kCmdFlagFua, std::string(512, 'f')).error, 0u);
  EXPECT_EQ(s.Do(kCmdWriteZeroes, 0, 512, kCmdFlagFua).error, 0u);
  EXPECT_EQ(v.fua_writes(), 2u);
}

TEST(Transmission, CacheIsAcceptedAfterTheRangeCheck) {
  Session s;
  EXPECT_EQ(s.Do(kCmdCache, 0, kDisk).error, 0u);
}

TEST(Transmission, VolumeErrorsReachTheClientAsEio) {
  Session s("bad");
  auto r = s.Read(64 * 1024, 4096);
  EXPECT_EQ(r.error, kEio);
  EXPECT_EQ(s.Do(kCmdWrite, 64 * 1024, 512, 0, std::string(512, 'x')).error, kEio);
  EXPECT_EQ(s.Do(kCmdWrite, 0, 512, 0, std::string(512, 'x')).error, 0u);  // elsewhere fine
}

TEST(Transmission, ManyRequestsInFlightAllAnswered) {
  Session s;
  constexpr int kCount = 500;
  std::string block(4096, 'p');
  // Like a real client, send and receive at the same time: a client that only
  // sends would fill both socket buffers and wait forever, whatever the server does.
  std::thread sender([&] {
    for (int i = 0; i < kCount; ++i) {
      uint16_t type = i % 3 == 0 ? kCmdWrite : kCmdRead;
      uint16_t flags = i % 10 == 0 ? kCmdFlagFua : 0;  // FUA goes to workers: real reordering
      ASSERT_TRUE(
          s.c().SendRequest(flags, type, 1000 + i, (i % 256) * 4096, 4096,
                            type == kCmdWrite ? std::string_view(block) : std::string_view()));
    }
  });
  std::set<uint64_t> cookies;
  while (cookies.size() < kCount) {
    auto r = s.c().ReadReply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, 0u);
    if (!r->structured || (r->flags & kReplyFlagDone)) cookies.insert(r->cookie);
  }
  sender.join();
  EXPECT_EQ(*cookies.begin(), 1000u);
  EXPECT_EQ(*cookies.rbegin(), 1000u + kCount - 1);
}

// Sends `count` 512-byte WRITEs pipelined (while reading the replies, as a real client
// does) and checks each is answered without error.
void PipelinedWrites(Session& s, int count) {
  std::string payload(512, 'w');
  std::thread sender([&] {
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(s.c().SendRequest(0, kCmdWrite, 5000 + i, (i % 1024) * 512, 512, payload));
    }
  });
  for (int i = 0; i < count; ++i) {
    auto r = s.c().ReadReply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, 0u);
  }
  sender.join();
}

// The reader runs small requests itself while the volume answers quickly, hands them to
// workers while it is slow, and takes them back once it is quick again (InlinePolicy:
// the unit tests there cover the decision; this covers its wiring into a connection).
// "Quick" is raised to 2 ms and "slow" is 20 ms, so that a sanitizer's slowness or a
// loaded host (a MemVolume write under TSan comes near the default 20 µs) cannot blur them.
TEST(Transmission, AVolumeThatTurnsQuickAgainIsServedByTheReaderAgain) {
  TransmissionLimits limits;
  limits.inline_quick_ns = 2'000'000;
  Session s("disk", true, true, limits);
  MemVolume& v = s.h.volume("disk");
  auto on_reader = [&](size_t from) {
    auto threads = v.write_threads();
    size_t n = 0;
    for (size_t i = from; i < threads.size(); ++i) n += threads[i] == s.h.reader_thread();
    return n;
  };
  PipelinedWrites(s, 200);
  EXPECT_GE(on_reader(0), 190u) << "a quick volume's writes went to workers";
  v.SetWriteDelay(std::chrono::milliseconds(20));
  size_t slow_start = v.write_threads().size();
  PipelinedWrites(s, 32);
  EXPECT_LE(on_reader(slow_start), 4u) << "a slow volume's writes stayed on the reader";
  v.SetWriteDelay(std::chrono::milliseconds(0));
  // Back within a few dozen requests; the last thousand on the reader.
  PipelinedWrites(s, 2000);
  size_t last = v.write_threads().size() - 1000;
  EXPECT_GE(on_reader(last), 950u) << "a volume quick again stayed on workers";
}

// Busy polling (BusyPollWindow; its unit tests cover the window, this its wiring): a
// client that sends its next request as soon as it has the reply finds the reader spinning
// for it; one that pauses between requests soon does not; turned off, or with no slot
// free, no reader spins. Windows are milliseconds, so that a sanitizer's slowness cannot
// blur "comes back quickly" and "pauses".
size_t SequentialWrites(Session& s, int count, std::chrono::milliseconds pause = {}) {
  std::string payload(512, 'w');
  size_t ok = 0;
  for (int i = 0; i < count; ++i) {
    ok += s.Do(kCmdWrite, (i % 1024) * 512, 512, 0, payload).error == 0;
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
  }
  return ok;
}

TEST(Transmission, AReaderSpinsForAClientThatComesBackQuickly) {
  SpinSlots slots(1);
  TransmissionLimits limits;
  limits.spin_slots = &slots;
  limits.busy_poll_ns = 20'000'000;
  limits.inline_quick_ns = 2'000'000;  // on the reader, so nothing is in flight when it waits
  Session s("disk", true, true, limits);
  EXPECT_EQ(SequentialWrites(s, 300), 300u);
  s.h.Finish();
  const Transmission::Outcome& out = s.h.outcome();
  EXPECT_EQ(out.requests, 300u);
  // Every wait after the first spins (the first opens the window, unless the client was
  // held up for 20 ms; then the next one does), and nearly all catch.
  EXPECT_GE(out.spins, 290u);
  EXPECT_GE(out.caught_by_spin, 250u);
  EXPECT_LE(out.caught_by_spin, out.spins);
}

TEST(Transmission, AReaderStopsSpinningForAClientThatPauses) {
  SpinSlots slots(1);
  TransmissionLimits limits;
  limits.spin_slots = &slots;
  limits.busy_poll_ns = 2'000'000;
  limits.inline_quick_ns = 2'000'000;
  Session s("disk", true, true, limits);
  // Five requests back to back open the window (one wait of them within 2 ms is enough,
  // however loaded the machine); then 20 with 30 ms pauses.
  EXPECT_EQ(SequentialWrites(s, 5), 5u);
  EXPECT_EQ(SequentialWrites(s, 20, std::chrono::milliseconds(30)), 20u);
  s.h.Finish();
  const Transmission::Outcome& out = s.h.outcome();
  // The waits before requests 2-6 are quick (the first paused request goes out at once):
  // at most 5 spins. Then 20 waits of 30 ms (the last ends with the client's close): each
  // halves the window and the fifth closes it, 5 spins. Without the closing, all 20 spin.
  EXPECT_GE(out.spins, 5u);
  EXPECT_LE(out.spins, 10u) << "the reader kept spinning for a client that pauses";
}

TEST(Transmission, NoReaderSpinsWhenBusyPollingIsOffOrNoSlotIsFree) {
  SpinSlots one(1), none(0);
  struct Case {
    uint64_t busy_poll_ns;
    SpinSlots* slots;
  };
  for (Case c : {Case{0, &one}, Case{20'000'000, &none}, Case{20'000'000, nullptr}}) {
    TransmissionLimits limits;
    limits.spin_slots = c.slots;
    limits.busy_poll_ns = c.busy_poll_ns;
    Session s("disk", true, true, limits);
    EXPECT_EQ(SequentialWrites(s, 100), 100u);
    s.h.Finish();
    EXPECT_EQ(s.h.outcome().requests, 100u);
    EXPECT_EQ(s.h.outcome().spins, 0u);
    EXPECT_EQ(s.h.outcome().caught_by_spin, 0u);
  }
}

// A volume that reads asynchronously (as on RADOS): the reader starts each READ and a
// worker sends the reply once the volume completes it, out of order. Every reply carries
// the right data, simple or structured, sparse or not; errors arrive as errors.
// Reads of 64 KiB and more go through a pipe (splice on the directory store): every reply
// must carry exactly the data a copied read would, holes and errors included, and a read
// that failed half-way into the pipe must leave nothing behind for the next reply.
TEST(Transmission, SplicedReadsCarryTheSameBytesAsCopiedOnes) {
  for (bool structured : {true, false}) {
    Session s("splice", structured, /*meta=*/structured);
    MemVolume& v = s.h.volume("splice");
    ASSERT_TRUE(v.pipe_reads());
    std::string expect(kDisk, '\0');  // what the disk holds: 128..256 KiB stays a hole
    for (uint64_t at : {uint64_t{0}, uint64_t{256 * 1024}, uint64_t{512 * 1024}}) {
      std::string piece(128 * 1024, '\0');
      for (size_t i = 0; i < piece.size(); ++i) piece[i] = static_cast<char>((at + i * 7) % 251);
      EXPECT_EQ(s.Do(kCmdWrite, at, static_cast<uint32_t>(piece.size()), 0, piece).error, 0u);
      expect.replace(at, piece.size(), piece);
    }
    auto read = [&](uint64_t offset, uint32_t length, uint16_t flags = 0) -> std::pair<uint32_t, std::string> {
      if (structured) {
        auto r = s.Read(offset, length, flags);
        return {r.error, r.data};
      }
      auto r = s.Do(kCmdRead, offset, length, flags, {}, length);
      return {r.error, r.payload};
    };
    uint64_t before = v.pipe_reads_done();
    EXPECT_EQ(read(0, 384 * 1024).second, expect.substr(0, 384 * 1024));
    if (structured) {
      auto r = s.Read(0, 384 * 1024);
      EXPECT_EQ(r.hole_chunks, 1);
      EXPECT_EQ(r.data_chunks, 2);
      auto df = s.Read(0, 384 * 1024, kCmdFlagDf);  // one data chunk, the hole as zeros
      EXPECT_EQ(df.data, expect.substr(0, 384 * 1024));
      EXPECT_EQ(df.data_chunks, 1);
    }
    EXPECT_EQ(read(0, 768 * 1024).second, expect.substr(0, 768 * 1024));  // most of the pipe
    EXPECT_GT(v.pipe_reads_done(), before) << "the reads did not go through the pipe";
    // Fails after 64 KiB went into the pipe; the next replies must not carry them.
    EXPECT_NE(read(704 * 1024, 128 * 1024).first, 0u);
    EXPECT_EQ(read(512 * 1024, 128 * 1024).second, expect.substr(512 * 1024, 128 * 1024));
    EXPECT_EQ(read(4096, 4096).second, expect.substr(4096, 4096));  // short: copied
    // Many in flight at once, answered by several workers, each with its own pipe.
    std::mt19937 rng(structured ? 7 : 8);
    struct Want {
      uint64_t offset;
      uint32_t length;
    };
    std::map<uint64_t, Want> wants;
    for (int i = 0; i < 120; ++i) {
      // A simple reply does not say its length: the client must know it, so one for all.
      uint32_t length = structured ? (1 + rng() % 4) * 64 * 1024 : 128 * 1024;
      uint64_t offset = (rng() % ((768 * 1024 - length) / 512)) * 512;
      wants[5000 + i] = {offset, length};
    }
    std::thread sender([&] {
      for (auto& [cookie, w] : wants) ASSERT_TRUE(s.c().SendRequest(0, kCmdRead, cookie, w.offset, w.length));
    });
    std::map<uint64_t, std::string> got;
    std::set<uint64_t> done;
    while (done.size() < wants.size()) {
      auto r = s.c().ReadReply(structured ? 0 : 128 * 1024);
      ASSERT_TRUE(r);
      auto it = wants.find(r->cookie);
      ASSERT_NE(it, wants.end()) << r->cookie;
      ASSERT_EQ(r->error, 0u) << r->cookie;
      if (!structured) {
        got[r->cookie] = r->payload;
      } else {
        PlaceChunk(*r, it->second.offset, &got[r->cookie]);
      }
      if (!r->structured || (r->flags & kReplyFlagDone)) done.insert(r->cookie);
    }
    sender.join();
    for (auto& [cookie, w] : wants) {
      EXPECT_EQ(got[cookie], expect.substr(w.offset, w.length)) << cookie;
    }
  }
}

// Writes into blocks written before complete on the volume's thread, out of order; the
// first write to a block, FUA writes and failing ones take the blocking path. Every write
// is answered once, and what was written is what is read back.
TEST(Transmission, AsynchronousWritesAnswerEveryRequestAndLand) {
  for (bool structured : {true, false}) {
    Session s("async", structured, /*meta=*/structured);
    MemVolume& v = s.h.volume("async");
    auto slot = [&](int i, int round) { return std::string(4096, static_cast<char>('A' + (i + round) % 26)); };
    for (int i = 0; i < 64; ++i) EXPECT_EQ(s.Do(kCmdWrite, i * 4096, 4096, 0, slot(i, 0)).error, 0u);  // holes: blocking
    uint64_t before = v.async_writes_done();
    constexpr int kCount = 256;
    std::thread sender([&] {
      for (int i = 0; i < kCount; ++i) {
        uint16_t flags = i % 16 == 15 ? kCmdFlagFua : 0;
        // Each round rewrites the 64 slots; a slot is rewritten only after its last write's reply.
        ASSERT_TRUE(s.c().SendRequest(flags, kCmdWrite, 2000 + i, (i % 64) * 4096, 4096, slot(i % 64, 1 + i / 64)));
        if (i % 64 == 63) {
          // wait for the replies of this round before the next overwrites the same slots
          while (true) {
            {
              std::lock_guard lock(s.mu);
              if (s.answered >= i + 1) break;
            }
            std::this_thread::yield();
          }
        }
      }
    });
    std::set<uint64_t> answered;
    while (answered.size() < kCount) {
      auto r = s.c().ReadReply();
      ASSERT_TRUE(r);
      EXPECT_EQ(r->error, 0u) << r->cookie;
      EXPECT_TRUE(answered.insert(r->cookie).second) << "answered twice: " << r->cookie;
      std::lock_guard lock(s.mu);
      s.answered = static_cast<int>(answered.size());
    }
    sender.join();
    EXPECT_GT(v.async_writes_done(), before) << "no write took the asynchronous path";
    EXPECT_EQ(s.Do(kCmdWrite, 512 * 1024, 4096, 0, std::string(4096, 'x')).error, static_cast<uint32_t>(EIO));
    for (int i = 0; i < 64; ++i) {
      std::string got = structured ? s.Read(i * 4096, 4096).data : s.Do(kCmdRead, i * 4096, 4096, 0, {}, 4096).payload;
      EXPECT_EQ(got, slot(i, kCount / 64)) << "slot " << i;
    }
  }
}

TEST(Transmission, AsynchronousReadsAnswerEveryRequestWithItsData) {
  for (bool structured : {true, false}) {
    Session s("async", structured, /*meta=*/structured);
    ASSERT_TRUE(s.h.volume("async").async_reads());
    auto slot = [](int i) { return std::string(4096, static_cast<char>('a' + i % 26)); };
    for (int i = 0; i < 64; ++i) EXPECT_EQ(s.Do(kCmdWrite, i * 4096, 4096, 0, slot(i)).error, 0u);
    // Mostly 4 KiB reads of written slots; every 50th the failing range; with structured
    // replies every 10th is a 128 KiB read over written data and a hole (hole chunks; a
    // simple reply's length must be known to the client, so those stay 4 KiB).
    auto failing = [](int i) { return i % 50 == 49; };
    auto big = [&](int i) { return structured && i % 10 == 9 && !failing(i); };
    auto offset_of = [&](int i) -> uint64_t {
      return failing(i) ? 512 * 1024 : big(i) ? 192 * 1024 : (i % 64) * 4096;
    };
    constexpr int kCount = 300;
    std::thread sender([&] {
      for (int i = 0; i < kCount; ++i)
        ASSERT_TRUE(s.c().SendRequest(0, kCmdRead, 1000 + i, offset_of(i), big(i) ? 128 * 1024 : 4096));
    });
    std::map<uint64_t, std::string> data;  // per cookie, reassembled
    std::set<uint64_t> done, failed;
    while (done.size() < kCount) {
      auto r = s.c().ReadReply(4096);
      ASSERT_TRUE(r);
      int i = static_cast<int>(r->cookie - 1000);
      ASSERT_TRUE(i >= 0 && i < kCount) << r->cookie;
      if (r->error != 0) {
        failed.insert(r->cookie);
      } else if (!structured) {
        data[r->cookie] = r->payload;
      } else {
        PlaceChunk(*r, offset_of(i), &data[r->cookie]);
      }
      if (!r->structured || (r->flags & kReplyFlagDone)) done.insert(r->cookie);
    }
    sender.join();
    std::string big_expect;
    for (int k = 48; k < 64; ++k) big_expect += slot(k);  // 192..256 KiB: written
    big_expect += std::string(64 * 1024, '\0');           // 256..320 KiB: never written
    for (int i = 0; i < kCount; ++i) {
      uint64_t cookie = 1000 + i;
      if (failing(i)) {
        EXPECT_TRUE(failed.count(cookie)) << "read " << i << " of the failing range succeeded";
        continue;
      }
      EXPECT_FALSE(failed.count(cookie)) << "read " << i;
      EXPECT_EQ(data[cookie], big(i) ? big_expect : slot(i % 64)) << "read " << i << (structured ? " structured" : " simple");
    }
    // One at a time (queue depth 1): the completion sends the reply itself.
    for (int i = 0; i < 20; ++i) {
      if (structured) {
        EXPECT_EQ(s.Read(i * 4096, 4096).data, slot(i)) << "sequential read " << i;
      } else {
        EXPECT_EQ(s.Do(kCmdRead, i * 4096, 4096, 0, {}, 4096).payload, slot(i)) << "sequential read " << i;
      }
    }
  }
}

TEST(Transmission, DisconnectFlushesAndReleases) {
  Session s;
  EXPECT_EQ(s.Do(kCmdWrite, 0, 512, 0, std::string(512, 'x')).error, 0u);
  ASSERT_TRUE(s.c().SendRequest(0, kCmdDisc, 1, 0, 0));
  EXPECT_TRUE(s.c().WaitForEof());
  s.h.Finish();
  EXPECT_EQ(s.h.provider().opens(), 1u);
  EXPECT_EQ(s.h.provider().releases(), 1u);
  EXPECT_GE(s.h.volume("disk").flushes(), 1u);
}

TEST(Transmission, BadRequestMagicHangsUp) {
  Session s;
  s.c().Send(std::string(28, '\x01'));
  EXPECT_TRUE(s.c().WaitForEof());
}

TEST(Transmission, OversizedWriteHangsUp) {
  Session s;
  ASSERT_TRUE(s.c().SendRequest(0, kCmdWrite, 1, 0, kMaxPayload + 1));
  EXPECT_TRUE(s.c().WaitForEof());
  s.h.Finish();
  EXPECT_EQ(s.h.provider().releases(), 1u);
}

TEST(Transmission, ClientVanishingMidWriteIsHarmless) {
  Session s;
  ASSERT_TRUE(s.c().SendRequest(0, kCmdWrite, 1, 0, 1 << 20, std::string(1000, 'x')));
  s.h.Finish();
  EXPECT_EQ(s.h.provider().releases(), 1u);
}

// Random bytes after the handshake or in place of it: the server must only ever
// answer or hang up. Replays with NBD_FUZZ_SEED.
TEST(Transmission, GarbageNeverCrashesTheServer) {
  uint64_t seed = std::getenv("NBD_FUZZ_SEED")
                      ? std::strtoull(std::getenv("NBD_FUZZ_SEED"), nullptr, 0)
                      : std::random_device{}();
  SCOPED_TRACE("NBD_FUZZ_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 40; ++round) {
    SessionHarness h;
    std::string junk(1 + rng() % 4096, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    bool after_handshake = round % 2 == 0;
    if (after_handshake) {
      ASSERT_TRUE(h.client().Negotiate("disk", rng() % 2, false));
      if (rng() % 2) {  // a valid header in front, so the body is judged as a request
        char header[28];
        PutBe32(header, kRequestMagic);
        std::string head(header, 4);
        junk.replace(0, std::min<size_t>(4, junk.size()), head);
      }
    }
    h.client().Send(junk);
    h.Finish();
    EXPECT_EQ(h.provider().opens(), h.provider().releases());
  }
}

}  // namespace
}  // namespace skerry::nbd::testing
