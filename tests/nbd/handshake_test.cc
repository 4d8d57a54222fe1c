// The handshake over a socketpair: every option, and the ways a client can get it
// wrong.
#include "nbd/handshake.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "nbd/protocol.h"
#include "session_harness.h"

namespace skerry::nbd::testing {
namespace {

constexpr uint32_t kFlags = kClientFlagFixedNewstyle | kClientFlagNoZeroes;

// Greets and sends client flags.
void Start(RawClient& c, uint32_t flags = kFlags) {
  auto greeting = c.ReadGreeting();
  ASSERT_TRUE(greeting);
  EXPECT_EQ(*greeting, kFlagFixedNewstyle | kFlagNoZeroes);
  ASSERT_TRUE(c.SendClientFlags(flags));
}

OptionReply Ask(RawClient& c, uint32_t option, std::string_view data = {}) {
  EXPECT_TRUE(c.SendOption(option, data));
  auto r = c.ReadOptionReply();
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->option, option);
  return *r;
}

TEST(Handshake, UnknownClientFlagsHangUp) {
  SessionHarness h;
  Start(h.client(), kFlags | 0x100);
  EXPECT_TRUE(h.client().WaitForEof());
}

TEST(Handshake, BadOptionMagicHangsUp) {
  SessionHarness h;
  Start(h.client());
  h.client().Send(std::string(16, 'x'));
  EXPECT_TRUE(h.client().WaitForEof());
}

TEST(Handshake, GiantOptionLengthHangsUpWithoutReadingIt) {
  SessionHarness h;
  Start(h.client());
  ASSERT_TRUE(h.client().SendOptionHeader(kOptGo, 0xffffffffu));
  EXPECT_TRUE(h.client().WaitForEof());
}

TEST(Handshake, ShortOptionThenCloseEndsQuietly) {
  SessionHarness h;
  Start(h.client());
  ASSERT_TRUE(h.client().SendOptionHeader(kOptGo, 100));
  h.client().Send("abc");
  h.Finish();
  EXPECT_EQ(h.provider().opens(), 0u);
}

TEST(Handshake, UnknownOptionIsUnsupportedAndNegotiationGoesOn) {
  SessionHarness h;
  Start(h.client());
  EXPECT_EQ(Ask(h.client(), 99, "some data").type, kRepErrUnsup);
  EXPECT_EQ(Ask(h.client(), kOptStructuredReply).type, kRepAck);
}

TEST(Handshake, ListNamesEveryExport) {
  SessionHarness h;
  Start(h.client());
  ASSERT_TRUE(h.client().SendOption(kOptList, ""));
  std::vector<std::string> names;
  for (;;) {
    auto r = h.client().ReadOptionReply();
    ASSERT_TRUE(r);
    if (r->type == kRepAck) break;
    ASSERT_EQ(r->type, kRepServer);
    uint32_t len = GetBe32(r->data.data());
    ASSERT_EQ(len + 4, r->data.size());
    names.push_back(r->data.substr(4));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"async", "bad", "big", "disk", "ro", "splice"}));
  EXPECT_EQ(Ask(h.client(), kOptList, "x").type, kRepErrInvalid);
}

TEST(Handshake, InfoDescribesAnExportAndReleasesIt) {
  SessionHarness h;
  Start(h.client());
  ASSERT_TRUE(
      h.client().SendOption(kOptInfo, RawClient::InfoData("disk", {kInfoBlockSize, kInfoName})));
  bool export_seen = false, block_seen = false, name_seen = false;
  for (;;) {
    auto r = h.client().ReadOptionReply();
    ASSERT_TRUE(r);
    if (r->type == kRepAck) break;
    ASSERT_EQ(r->type, kRepInfo);
    switch (GetBe16(r->data.data())) {
      case kInfoExport:
        ASSERT_EQ(r->data.size(), 12u);
        EXPECT_EQ(GetBe64(r->data.data() + 2), 1u << 20);
        EXPECT_EQ(GetBe16(r->data.data() + 10),
                  kTxHasFlags | kTxSendFlush | kTxSendFua | kTxSendTrim | kTxSendWriteZeroes |
                      kTxSendFastZero | kTxSendCache | kTxCanMultiConn);
        export_seen = true;
        break;
      case kInfoBlockSize:
        ASSERT_EQ(r->data.size(), 14u);
        EXPECT_EQ(GetBe32(r->data.data() + 2), 1u);
        EXPECT_EQ(GetBe32(r->data.data() + 6), 4096u);
        EXPECT_EQ(GetBe32(r->data.data() + 10), 32u << 20);
        block_seen = true;
        break;
      case kInfoName:
        EXPECT_EQ(r->data.substr(2), "disk");
        name_seen = true;
        break;
    }
  }
  EXPECT_TRUE(export_seen && block_seen && name_seen);
  EXPECT_EQ(h.provider().opens(), 1u);
  EXPECT_EQ(h.provider().releases(), 1u);
}

TEST(Handshake, MissingExportIsUnknown) {
  SessionHarness h;
  Start(h.client());
  auto r = Ask(h.client(), kOptGo, RawClient::InfoData("nope"));
  EXPECT_EQ(r.type, kRepErrUnknown);
  EXPECT_NE(r.data.find("nope"), std::string::npos);  // a message for humans
  EXPECT_EQ(Ask(h.client(), kOptInfo, RawClient::InfoData("")).type, kRepErrUnknown);
}

TEST(Handshake, MalformedInfoIsInvalid) {
  SessionHarness h;
  Start(h.client());
  EXPECT_EQ(Ask(h.client(), kOptGo, "abc").type, kRepErrInvalid);  // too short
  std::string data = RawClient::InfoData("disk");
  PutBe32(data.data(), 1000);  // name longer than the option
  EXPECT_EQ(Ask(h.client(), kOptGo, data).type, kRepErrInvalid);
  data = RawClient::InfoData("disk", {kInfoName});
  data.pop_back();  // request list cut short
  EXPECT_EQ(Ask(h.client(), kOptGo, data).type, kRepErrInvalid);
  EXPECT_EQ(h.provider().opens(), 0u);
}

TEST(Handshake, ReadOnlyExportAdvertisesNoWrites) {
  SessionHarness h;
  auto n = h.client().Negotiate("ro", true, false);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->flags,
            kTxHasFlags | kTxReadOnly | kTxSendFlush | kTxSendCache | kTxCanMultiConn | kTxSendDf);
}

TEST(Handshake, ExportNameWithAndWithoutZeroes) {
  for (bool no_zeroes : {true, false}) {
    SessionHarness h;
    Start(h.client(), kClientFlagFixedNewstyle | (no_zeroes ? kClientFlagNoZeroes : 0));
    ASSERT_TRUE(h.client().SendOption(kOptExportName, "disk"));
    auto reply = h.client().Recv(no_zeroes ? 10 : 134);
    ASSERT_TRUE(reply);
    EXPECT_EQ(GetBe64(reply->data()), 1u << 20);
    EXPECT_EQ(reply->substr(10), std::string(no_zeroes ? 0 : 124, '\0'));
    // Transmission works: a simple-reply read.
    ASSERT_TRUE(h.client().SendRequest(0, kCmdRead, 7, 0, 512));
    auto r = h.client().ReadReply(512);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->cookie, 7u);
    EXPECT_EQ(r->error, 0u);
  }
}

TEST(Handshake, OldNewstyleClientCanUseExportName) {
  SessionHarness h;
  Start(h.client(), 0);
  ASSERT_TRUE(h.client().SendOption(kOptExportName, "disk"));
  EXPECT_TRUE(h.client().Recv(134));
}

TEST(Handshake, ExportNameOfMissingExportHangsUp) {
  SessionHarness h;
  Start(h.client());
  ASSERT_TRUE(h.client().SendOption(kOptExportName, "nope"));
  EXPECT_TRUE(h.client().WaitForEof());
}

TEST(Handshake, AbortIsAcknowledged) {
  SessionHarness h;
  Start(h.client());
  EXPECT_EQ(Ask(h.client(), kOptAbort).type, kRepAck);
  EXPECT_TRUE(h.client().WaitForEof());
}

TEST(Handshake, StructuredReplyTakesNoData) {
  SessionHarness h;
  Start(h.client());
  EXPECT_EQ(Ask(h.client(), kOptStructuredReply, "x").type, kRepErrInvalid);
  EXPECT_EQ(Ask(h.client(), kOptStructuredReply).type, kRepAck);
}

TEST(Handshake, MetaContexts) {
  SessionHarness h;
  Start(h.client());
  // Before structured replies: refused.
  EXPECT_EQ(
      Ask(h.client(), kOptSetMetaContext, RawClient::MetaData("disk", {kBaseAllocation})).type,
      kRepErrInvalid);
  EXPECT_EQ(Ask(h.client(), kOptStructuredReply).type, kRepAck);

  auto expect_contexts = [&](uint32_t option, const std::string& data,
                             std::vector<std::pair<uint32_t, std::string>> expected) {
    ASSERT_TRUE(h.client().SendOption(option, data));
    std::vector<std::pair<uint32_t, std::string>> got;
    for (;;) {
      auto r = h.client().ReadOptionReply();
      ASSERT_TRUE(r);
      if (r->type == kRepAck) break;
      ASSERT_EQ(r->type, kRepMetaContext);
      got.emplace_back(GetBe32(r->data.data()), r->data.substr(4));
    }
    EXPECT_EQ(got, expected);
  };
  expect_contexts(kOptListMetaContext, RawClient::MetaData("disk", {}), {{0, kBaseAllocation}});
  expect_contexts(kOptListMetaContext, RawClient::MetaData("disk", {"base:"}),
                  {{0, kBaseAllocation}});
  expect_contexts(kOptListMetaContext, RawClient::MetaData("disk", {"qemu:dirty-bitmap:x"}), {});
  // "base:" selects nothing; unknown namespaces are ignored.
  expect_contexts(kOptSetMetaContext, RawClient::MetaData("disk", {"base:", "x-foo:bar"}), {});
  expect_contexts(kOptSetMetaContext, RawClient::MetaData("disk", {"x-foo:bar", kBaseAllocation}),
                  {{kAllocationContextId, kBaseAllocation}});

  std::string bad = RawClient::MetaData("disk", {kBaseAllocation});
  bad.pop_back();  // query runs past the option
  EXPECT_EQ(Ask(h.client(), kOptSetMetaContext, bad).type, kRepErrInvalid);
  bad = RawClient::MetaData("disk", {kBaseAllocation}) + "junk";
  EXPECT_EQ(Ask(h.client(), kOptListMetaContext, bad).type, kRepErrInvalid);
}

TEST(Handshake, StartTlsWhenTlsIsOffIsPolicy) {
  SessionHarness h;
  Start(h.client());
  EXPECT_EQ(Ask(h.client(), kOptStartTls).type, kRepErrPolicy);
  EXPECT_EQ(Ask(h.client(), kOptStructuredReply).type, kRepAck);
}

class TlsRequiredHandshake : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/nbd-psk-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir));
    dir_ = dir;
    std::ofstream(dir_ + "/keys.psk") << "alice:0123456789abcdef0123456789abcdef\n";
    TlsOptions options;
    options.mode = TlsMode::kRequired;
    options.psk_file = dir_ + "/keys.psk";
    auto ctx = TlsContext::Create(options);
    ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
    tls_ = *ctx;
  }
  void TearDown() override {
    ::unlink((dir_ + "/keys.psk").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
  std::shared_ptr<TlsContext> tls_;
};

TEST_F(TlsRequiredHandshake, OptionsBeforeStartTlsAreRefused) {
  SessionHarness h(tls_.get());
  Start(h.client());
  EXPECT_EQ(Ask(h.client(), kOptList).type, kRepErrTlsReqd);
  EXPECT_EQ(Ask(h.client(), kOptGo, RawClient::InfoData("disk")).type, kRepErrTlsReqd);
  EXPECT_EQ(Ask(h.client(), kOptStructuredReply).type, kRepErrTlsReqd);
  EXPECT_EQ(Ask(h.client(), 99).type, kRepErrTlsReqd);
  EXPECT_EQ(Ask(h.client(), kOptStartTls, "x").type, kRepErrInvalid);
  EXPECT_EQ(Ask(h.client(), kOptAbort).type, kRepAck);
  EXPECT_EQ(h.provider().opens(), 0u);
}

TEST_F(TlsRequiredHandshake, ExportNameBeforeStartTlsHangsUp) {
  SessionHarness h(tls_.get());
  Start(h.client());
  ASSERT_TRUE(h.client().SendOption(kOptExportName, "disk"));
  EXPECT_TRUE(h.client().WaitForEof());
  EXPECT_EQ(h.provider().opens(), 0u);
}

TEST_F(TlsRequiredHandshake, ClientWithoutFixedNewstyleIsRefused) {
  SessionHarness h(tls_.get());
  Start(h.client(), 0);
  EXPECT_TRUE(h.client().WaitForEof());
}

TEST_F(TlsRequiredHandshake, GarbageInsteadOfTlsHelloEndsTheSession) {
  SessionHarness h(tls_.get());
  Start(h.client());
  EXPECT_EQ(Ask(h.client(), kOptStartTls).type, kRepAck);
  h.client().Send(std::string(300, '\x16'));
  EXPECT_TRUE(h.client().WaitForEof());
}

TEST(Handshake, TooManyOptionsHangUp) {
  SessionHarness h;
  Start(h.client());
  for (int i = 0; i < kMaxOptions; ++i) {
    if (Ask(h.client(), 99).type != kRepErrUnsup) FAIL() << "option " << i;
  }
  h.client().SendOption(99, "");  // may already fail: the server hung up after the last reply
  EXPECT_TRUE(h.client().WaitForEof());
}

}  // namespace
}  // namespace skerry::nbd::testing
