// ByteWriter / ByteReader: little-endian encoding of the metadata objects of docs/format.md.
// A ByteReader never reads past its input: every getter reports truncation through ok().
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace skerry::volume {

class ByteWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I64(int64_t v) { Raw(&v, 8); }
  void Bytes(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void Zeros(size_t n) { out_.append(n, '\0'); }
  const std::string& data() const { return out_; }
  std::string& data() { return out_; }
  void Reserve(size_t n) { out_.reserve(n); }

 private:
  // The format is little-endian and every platform we build for is too.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "big-endian hosts need byte swaps here");
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  uint8_t U8() { uint8_t v = 0; Raw(&v, 1); return v; }
  uint16_t U16() { uint16_t v = 0; Raw(&v, 2); return v; }
  uint32_t U32() { uint32_t v = 0; Raw(&v, 4); return v; }
  uint64_t U64() { uint64_t v = 0; Raw(&v, 8); return v; }
  int64_t I64() { int64_t v = 0; Raw(&v, 8); return v; }
  void Bytes(void* p, size_t n) { Raw(p, n); }
  std::string_view View(size_t n) {
    if (!Need(n)) return {};
    std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  void Skip(size_t n) { if (Need(n)) pos_ += n; }
  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }

 private:
  bool Need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  void Raw(void* p, size_t n) {
    if (!Need(n)) return;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace skerry::volume
