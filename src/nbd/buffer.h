// Buffer: a reusable, uninitialized byte array for request payloads.
//
// Growing never zero-fills (the bytes are about to be overwritten by a socket read
// or a volume read), and shrinking keeps the allocation so the next request of the
// connection reuses it.
//
// Thread-safety: none; a Buffer belongs to one request at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

namespace skerry::nbd {

class Buffer {
 public:
  // Makes size() == n; contents are unspecified.
  void Resize(size_t n) {
    if (n > capacity_) {
      data_.reset(new char[n]);
      capacity_ = n;
    }
    size_ = n;
  }
  // Frees the allocation.
  void Clear() {
    data_.reset();
    capacity_ = size_ = 0;
  }
  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  std::span<char> span() { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace skerry::nbd
