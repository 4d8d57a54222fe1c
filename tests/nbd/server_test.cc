// Server: listening on Unix and TCP sockets, connection limits, and graceful
// shutdown with clients connected and requests in flight.
#include "nbd/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "mem_export_provider.h"
#include "nbd/protocol.h"
#include "raw_client.h"

namespace skerry::nbd::testing {
namespace {

int ConnectUnix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int ConnectTcp(const std::string& address) {  // "tcp:127.0.0.1:PORT"
  int port = std::stoi(address.substr(address.rfind(':') + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/nbd-server-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir));
    dir_ = dir;
    socket_ = dir_ + "/nbd.sock";
    provider_ = std::make_shared<MemExportProvider>();
    provider_->Add(std::make_shared<MemVolume>("disk", 1 << 20));
  }
  void TearDown() override {
    ::unlink(socket_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::unique_ptr<Server> Make(ServerOptions options = {}) {
    options.worker_threads = 4;
    auto server = Server::Create(provider_, options);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    return std::move(server).value();
  }
  // Make, listening on socket_ and started: the accept thread also ends stalled connections.
  std::unique_ptr<Server> MakeStarted(ServerOptions options) {
    auto server = Make(options);
    EXPECT_TRUE(server->Listen("unix:" + socket_).ok());
    EXPECT_TRUE(server->Start().ok());
    return server;
  }
  // A client on socket_ with the handshake done for "disk".
  std::unique_ptr<RawClient> Negotiated(bool structured) {
    auto client = std::make_unique<RawClient>(ConnectUnix(socket_));
    EXPECT_TRUE(client->Negotiate("disk", structured, false));
    return client;
  }

  std::string dir_, socket_;
  std::shared_ptr<MemExportProvider> provider_;
};

TEST_F(ServerTest, ServesUnixAndTcpThenShutsDownGracefully) {
  auto server = Make();
  ASSERT_TRUE(server->Listen("unix:" + socket_).ok());
  ASSERT_TRUE(server->Listen("tcp:127.0.0.1:0").ok());
  ASSERT_TRUE(server->Start().ok());
  auto addresses = server->addresses();
  ASSERT_EQ(addresses.size(), 2u);
  EXPECT_EQ(addresses[0], "unix:" + socket_);
  ASSERT_TRUE(addresses[1].starts_with("tcp:127.0.0.1:"));
  EXPECT_NE(addresses[1], "tcp:127.0.0.1:0");

  RawClient unix_client(ConnectUnix(socket_));
  RawClient tcp_client(ConnectTcp(addresses[1]));
  ASSERT_TRUE(unix_client.Negotiate("disk", true, false));
  ASSERT_TRUE(tcp_client.Negotiate("disk", false, false));
  // A write in flight on one connection when shutdown starts is still answered.
  std::string data(4096, 'z');
  ASSERT_TRUE(tcp_client.SendRequest(0, kCmdWrite, 5, 0, 4096, data));
  auto reply = tcp_client.ReadReply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->error, 0u);

  server->Shutdown();
  EXPECT_TRUE(unix_client.WaitForEof());
  EXPECT_TRUE(tcp_client.WaitForEof());
  EXPECT_EQ(provider_->opens(), 2u);
  EXPECT_EQ(provider_->releases(), 2u);
  EXPECT_GE(provider_->Get("disk")->flushes(), 2u);  // each writable connection flushed
  struct stat st;
  EXPECT_NE(::stat(socket_.c_str(), &st), 0);  // socket file removed
  EXPECT_LT(ConnectUnix(socket_), 0);
}

TEST_F(ServerTest, StaleSocketIsReplacedLiveOneIsNot) {
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", socket_.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
    ::close(fd);  // left behind, nobody listening
  }
  auto first = Make();
  ASSERT_TRUE(first->Listen("unix:" + socket_).ok());
  ASSERT_TRUE(first->Start().ok());
  auto second = Make();
  Status st = second->Listen("unix:" + socket_);
  EXPECT_TRUE(st.IsAlreadyExists()) << st.ToString();
}

TEST_F(ServerTest, BadAddressesAreRefused) {
  auto server = Make();
  EXPECT_FALSE(server->Listen("udp:1.2.3.4:5").ok());
  EXPECT_FALSE(server->Listen("tcp:127.0.0.1").ok());
  EXPECT_FALSE(server->Listen("unix:" + std::string(200, 'x')).ok());
  EXPECT_FALSE(server->Listen("tcp:no.such.host.invalid:10809").ok());
}

TEST_F(ServerTest, ConnectionsBeyondTheLimitAreClosed) {
  ServerOptions options;
  options.max_connections = 1;
  auto server = Make(options);
  ASSERT_TRUE(server->Listen("unix:" + socket_).ok());
  ASSERT_TRUE(server->Start().ok());
  RawClient first(ConnectUnix(socket_));
  ASSERT_TRUE(first.ReadGreeting());
  RawClient second(ConnectUnix(socket_));
  EXPECT_TRUE(second.WaitForEof());
  ASSERT_TRUE(first.SendClientFlags(kClientFlagFixedNewstyle));
  ASSERT_TRUE(first.SendOption(kOptAbort, ""));
  EXPECT_TRUE(first.ReadOptionReply());
}

TEST_F(ServerTest, SilentClientTimesOutInTheHandshake) {
  ServerOptions options;
  options.handshake_timeout = std::chrono::milliseconds(200);
  auto server = Make(options);
  ASSERT_TRUE(server->Listen("unix:" + socket_).ok());
  ASSERT_TRUE(server->Start().ok());
  RawClient client(ConnectUnix(socket_));
  ASSERT_TRUE(client.ReadGreeting());
  EXPECT_TRUE(client.WaitForEof());  // never sent its flags
}

// Each receive of the handshake is bounded, and so is the whole of it: a client that
// sends an option a byte at a time, each in time, cannot keep its connection slot.
TEST_F(ServerTest, AClientTricklingItsHandshakeIsCutOff) {
  ServerOptions options;
  options.handshake_timeout = std::chrono::milliseconds(200);  // the whole: 600 ms
  auto server = MakeStarted(options);
  RawClient client(ConnectUnix(socket_));
  ASSERT_TRUE(client.ReadGreeting());
  ASSERT_TRUE(client.SendClientFlags(kClientFlagFixedNewstyle));
  ASSERT_TRUE(client.SendOptionHeader(kOptGo, 1000));
  bool ended = false;
  for (int i = 0; i < 50 && !ended; ++i) {  // 5 s of a byte every 100 ms
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    pollfd p{client.fd(), POLLIN, 0};
    char c;
    ended = ::poll(&p, 1, 0) == 1 && ::recv(client.fd(), &c, 1, MSG_DONTWAIT) <= 0;
    if (!ended) ended = !client.Send("x");
  }
  EXPECT_TRUE(ended) << "the server kept a trickling handshake for 5 s";
  server->Shutdown();
}

TEST_F(ServerTest, ServesAConnectedSocket) {
  auto server = Make();
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  server->ServeSocket(UniqueFd(fds[1]), "socketpair");
  RawClient client(fds[0]);
  ASSERT_TRUE(client.Negotiate("disk", true, false));
  ASSERT_TRUE(client.SendRequest(0, kCmdWrite, 1, 0, 512, std::string(512, 'q')));
  auto reply = client.ReadReply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->error, 0u);
  server->Shutdown();
  EXPECT_TRUE(client.WaitForEof());
  EXPECT_EQ(provider_->releases(), 1u);
}

// The server-wide bound on bytes in flight: three clients pipelining writes to a slow
// volume never hold more than it together (the readers wait instead), every write still
// completes with its data, and a request larger than the whole bound runs alone.
TEST_F(ServerTest, ConnectionsTogetherStayWithinTheMemoryBudget) {
  ServerOptions options;
  options.max_inflight_memory = 512 * 1024;  // two of the writes below
  auto server = Make(options);
  provider_->Get("disk")->SetWriteDelay(std::chrono::milliseconds(5));
  constexpr int kClients = 3, kWrites = 12;
  constexpr uint32_t kLength = 256 * 1024;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int c = 0; c < kClients; ++c) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server->ServeSocket(UniqueFd(fds[1]), "client" + std::to_string(c));
    clients.push_back(std::make_unique<RawClient>(fds[0]));
    ASSERT_TRUE(clients.back()->Negotiate("disk", true, false));
  }
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      RawClient& client = *clients[c];
      for (int i = 0; i < kWrites; ++i)
        ASSERT_TRUE(client.SendRequest(0, kCmdWrite, i, (i % 4) * kLength, kLength, std::string(kLength, 'a' + c)));
      for (int i = 0; i < kWrites; ++i) {
        auto r = client.ReadReply();
        ASSERT_TRUE(r);
        if (r->error == 0) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kWrites);
  EXPECT_LE(server->budget().peak(), options.max_inflight_memory);
  EXPECT_GT(server->budget().waits(), 0u) << "the bound never held a reader back: the test proves nothing";
  // Given back once each reply is sent: the server may still be finishing the last one when
  // its client has read it.
  for (int i = 0; i < 500 && server->budget().in_use() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server->budget().in_use(), 0u);
  // Larger than the whole budget: admitted alone.
  provider_->Get("disk")->SetWriteDelay(std::chrono::milliseconds(0));
  ASSERT_TRUE(clients[0]->SendRequest(0, kCmdWrite, 99, 0, 1 << 20, std::string(1 << 20, 'z')));
  auto r = clients[0]->ReadReply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, 0u);
  server->Shutdown();
}

// A client that stops in the middle of a write's payload holds the payload's memory of the
// server's budget; past limits.stall_timeout its connection ends and the memory comes back,
// so other clients go on. (Without the deadline the second write below waits for good.)
TEST_F(ServerTest, AClientStalledInAWritePayloadIsCutOffAndItsMemoryReturned) {
  ServerOptions options;
  options.limits.stall_timeout = std::chrono::milliseconds(300);
  options.max_inflight_memory = 1 << 20;  // exactly the stalled write
  auto server = MakeStarted(options);
  auto staller_client = Negotiated(true);
  RawClient& staller = *staller_client;
  // The header of a 1 MiB write and 100 bytes of its payload, then nothing.
  ASSERT_TRUE(staller.SendRequest(0, kCmdWrite, 1, 0, 1 << 20, std::string(100, 's')));
  for (int i = 0; i < 500 && server->budget().in_use() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(server->budget().in_use(), 1u << 20) << "the stalled write never took its memory";
  auto other_client = Negotiated(true);
  RawClient& other = *other_client;
  ASSERT_TRUE(other.SendRequest(0, kCmdWrite, 2, 0, 65536, std::string(65536, 'o')));
  auto reply = other.ReadReply();
  ASSERT_TRUE(reply) << "a stalled client held the server's memory budget";
  EXPECT_EQ(reply->error, 0u);
  EXPECT_TRUE(staller.WaitForEof());
  server->Shutdown();
}

// Idle between requests is not a stall: a client may stay silent as long as it likes.
TEST_F(ServerTest, AnIdleClientIsNotCutOff) {
  ServerOptions options;
  options.limits.stall_timeout = std::chrono::milliseconds(100);
  auto server = MakeStarted(options);
  auto idle = Negotiated(true);
  RawClient& client = *idle;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  ASSERT_TRUE(client.SendRequest(0, kCmdFlush, 1, 0, 0));
  auto reply = client.ReadReply();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->error, 0u);
  server->Shutdown();
}

// A client that sends reads and never takes the replies: the worker sending to it blocks,
// and the workers with its other replies queue behind it, until no worker is left for
// anyone. Past the deadline its connection ends; other clients are served, and a
// shutdown (which answers what is in flight first) does not wait for it forever.
TEST_F(ServerTest, AClientThatStopsTakingRepliesIsCutOffAndShutdownEnds) {
  ServerOptions options;
  options.limits.stall_timeout = std::chrono::milliseconds(300);
  auto server = MakeStarted(options);
  // Simple replies: every read answered with its data (structured ones of an empty
  // volume would be short hole chunks).
  auto staller_client = Negotiated(false);
  RawClient& staller = *staller_client;
  auto send_reads = [](RawClient& c) {  // 32 MiB of replies nobody takes
    for (int i = 0; i < 32; ++i)
      if (!c.SendRequest(0, kCmdRead, i, 0, 1 << 20)) return false;
    return true;
  };
  ASSERT_TRUE(send_reads(staller));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto other_client = Negotiated(true);
  RawClient& other = *other_client;
  ASSERT_TRUE(other.SendRequest(0, kCmdFlush, 1, 0, 0));  // a flush runs on a worker
  auto reply = other.ReadReply();
  ASSERT_TRUE(reply) << "one client that takes no replies held every worker";
  EXPECT_EQ(reply->error, 0u);
  // Another one stalls the same way, then the server shuts down.
  auto second_client = Negotiated(false);
  RawClient& second = *second_client;
  ASSERT_TRUE(send_reads(second));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto shutdown = std::async(std::launch::async, [&] { server->Shutdown(); });
  EXPECT_EQ(shutdown.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "shutdown waits for a client that takes no replies";
  if (shutdown.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    ::shutdown(second.fd(), SHUT_RDWR);  // let it end, so the test can
    shutdown.wait();
  }
}

TEST_F(ServerTest, ShutdownWithoutStartAndTwice) {
  auto server = Make();
  ASSERT_TRUE(server->Listen("unix:" + socket_).ok());
  server->Shutdown();
  server->Shutdown();
}

}  // namespace
}  // namespace skerry::nbd::testing
