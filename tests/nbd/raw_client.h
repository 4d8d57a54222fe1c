// RawClient: a deliberately minimal NBD client for unit tests. It writes exactly
// the bytes a test asks for (valid or not) and decodes what the server answers,
// so tests can drive the handshake and transmission step by step.
//
// Every receive has a timeout, so a server that fails to answer makes the test
// fail instead of hang.
//
// Thread-safety: none; one test thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skerry::nbd::testing {

struct OptionReply {
  uint32_t option = 0;
  uint32_t type = 0;
  std::string data;
};

// One reply message: a simple reply or one structured chunk.
struct ReplyMessage {
  bool structured = false;
  uint32_t error = 0;  // simple replies
  uint16_t flags = 0;  // structured chunks
  uint16_t type = 0;
  uint64_t cookie = 0;
  std::string payload;  // chunk payload, or READ data of a simple reply
};

class RawClient {
 public:
  // Takes ownership of fd.
  explicit RawClient(int fd);
  ~RawClient();

  int fd() const { return fd_; }
  bool Send(std::string_view bytes);
  // Exactly n bytes, or nullopt at EOF / timeout.
  std::optional<std::string> Recv(size_t n);
  // True if the server closed the connection (EOF or reset) within the timeout.
  bool WaitForEof();

  // Handshake steps.
  std::optional<uint16_t> ReadGreeting();  // returns the handshake flags
  bool SendClientFlags(uint32_t flags);
  bool SendOption(uint32_t option, std::string_view data);
  bool SendOptionHeader(uint32_t option, uint32_t length);  // no data follows
  std::optional<OptionReply> ReadOptionReply();
  // Data of INFO/GO for `name` with the given information requests.
  static std::string InfoData(std::string_view name, const std::vector<uint16_t>& requests = {});
  // Data of LIST/SET_META_CONTEXT.
  static std::string MetaData(std::string_view name, const std::vector<std::string>& queries);

  struct Negotiated {
    uint64_t size = 0;
    uint16_t flags = 0;
  };
  // Greeting, flags, optional STRUCTURED_REPLY and SET_META_CONTEXT base:allocation,
  // then GO. nullopt if anything went differently.
  std::optional<Negotiated> Negotiate(std::string_view name, bool structured, bool meta);

  // Transmission.
  bool SendRequest(uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length,
                   std::string_view payload = {});
  // Reads one reply message. For a simple reply, `simple_read_length` bytes of data
  // follow when error == 0 (the client must know: that is the protocol).
  std::optional<ReplyMessage> ReadReply(uint32_t simple_read_length = 0);

 private:
  int fd_;
};

}  // namespace skerry::nbd::testing
