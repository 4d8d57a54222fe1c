#include "nbd/buffered_reader.h"

#include <algorithm>
#include <cstring>

namespace skerry::nbd {

Status BufferedReader::Fill(size_t n) {
  if (available() >= n) return Status::OK();
  if (available() == 0) begin_ = end_ = 0;
  if (begin_ + n > capacity_) {  // no room behind: move the partial bytes to the front
    std::memmove(buf_.get(), buf_.get() + begin_, available());
    end_ -= begin_;
    begin_ = 0;
  }
  while (available() < n) {
    SKERRY_ASSIGN_OR_RETURN(size_t got, transport_.ReadSome(buf_.get() + end_, capacity_ - end_));
    end_ += got;
  }
  return Status::OK();
}

Status BufferedReader::ReadInto(char* dst, size_t n) {
  if (n == 0) return Status::OK();  // dst may be null for an empty payload
  size_t from_buffer = std::min(n, available());
  std::memcpy(dst, data(), from_buffer);
  Consume(from_buffer);
  if (available() == 0) begin_ = end_ = 0;
  return transport_.ReadFull(dst + from_buffer, n - from_buffer);
}

Status BufferedReader::Discard(size_t n) {
  size_t from_buffer = std::min(n, available());
  Consume(from_buffer);
  if (available() == 0) begin_ = end_ = 0;
  return transport_.Discard(n - from_buffer);
}

}  // namespace skerry::nbd
