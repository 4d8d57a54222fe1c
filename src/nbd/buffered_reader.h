// BufferedReader: reads the request stream of one connection with read-ahead.
//
// At queue depth 32 a client has many requests in flight, so one recv usually
// returns several request headers (and small write payloads); parsing them from a
// buffer saves a syscall per request. Payloads bigger than what is buffered are
// read straight into the caller's buffer (the one later passed to Volume::Write).
//
// Only for the transmission phase: in the handshake, bytes after NBD_OPT_STARTTLS
// belong to TLS and must not be read ahead.
//
// Thread-safety: one reader thread.
#pragma once

#include <cstddef>
#include <memory>

#include "nbd/transport.h"
#include "skerry/status.h"

namespace skerry::nbd {

class BufferedReader {
 public:
  BufferedReader(Transport& transport, size_t capacity)
      : transport_(transport), buf_(new char[capacity]), capacity_(capacity) {}

  // Makes at least n bytes available at data(). REQUIRES: n <= capacity.
  Status Fill(size_t n);
  const char* data() const { return buf_.get() + begin_; }
  size_t available() const { return end_ - begin_; }
  void Consume(size_t n) { begin_ += n; }
  // Reads exactly n bytes into dst: buffered ones first, the rest from the socket.
  Status ReadInto(char* dst, size_t n);
  // Skips n bytes of the stream.
  Status Discard(size_t n);

 private:
  Transport& transport_;
  std::unique_ptr<char[]> buf_;
  size_t capacity_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace skerry::nbd
