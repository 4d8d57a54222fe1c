// The model behind crash_test: what each volume must read back after a simulated power
// loss, kept sparse so volumes of a GiB (several map chunks) cost only what was written.
//
// For every volume the model keeps `cur` (what reads return now, through the open volume)
// and `durable` (what the last completed flush covered), plus the log of changes since
// that flush. After a crash a byte must read as its durable value or as the value of
// one of the logged changes that cover it ("old or new"); see docs/faults.md.
//
// Thread-safety: plain values, one run's thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace skerry::crash {

// Bytes of a given size, stored as the 4 KiB pages that were ever written; the rest are zeros.
class SparseBytes {
 public:
  static constexpr uint64_t kPage = 4096;

  SparseBytes() = default;
  explicit SparseBytes(uint64_t size) : size_(size) {}
  uint64_t size() const { return size_; }

  void Write(uint64_t off, std::string_view data) {
    for (uint64_t done = 0; done < data.size();) {
      uint64_t pos = off + done, page = pos / kPage, in = pos % kPage;
      uint64_t n = std::min<uint64_t>(data.size() - done, kPage - in);
      std::string& p = pages_[page];
      if (p.empty()) p.assign(kPage, '\0');
      p.replace(in, n, data.substr(done, n));
      done += n;
    }
  }
  void Zero(uint64_t off, uint64_t len) {
    uint64_t end = off + len;
    for (auto it = pages_.lower_bound(off / kPage); it != pages_.end() && it->first * kPage < end;) {
      uint64_t start = it->first * kPage;
      uint64_t a = std::max(off, start), b = std::min(end, start + kPage);
      if (a == start && b == start + kPage) {
        it = pages_.erase(it);
        continue;
      }
      std::fill(it->second.begin() + (a - start), it->second.begin() + (b - start), '\0');
      ++it;
    }
  }
  void Resize(uint64_t n) {
    if (n < size_) Zero(n, size_ - n);
    size_ = n;
  }
  char At(uint64_t i) const {
    auto it = pages_.find(i / kPage);
    return it == pages_.end() || i >= size_ ? '\0' : it->second[i % kPage];
  }
  std::string Read(uint64_t off, uint64_t len) const {
    std::string out(len, '\0');
    for (auto it = pages_.lower_bound(off / kPage); it != pages_.end() && it->first * kPage < off + len; ++it) {
      uint64_t start = it->first * kPage;
      uint64_t a = std::max(off, start), b = std::min(off + len, start + kPage);
      std::copy(it->second.begin() + (a - start), it->second.begin() + (b - start), out.begin() + (a - off));
    }
    return out;
  }
  // Indices of the pages that may hold non-zero bytes.
  std::set<uint64_t> Pages() const {
    std::set<uint64_t> out;
    for (auto& [p, _] : pages_)
      if (p * kPage < size_) out.insert(p);
    return out;
  }
  bool operator==(const SparseBytes& o) const {
    if (size_ != o.size_) return false;
    std::set<uint64_t> all = Pages(), theirs = o.Pages();
    all.insert(theirs.begin(), theirs.end());
    for (uint64_t p : all) {
      uint64_t n = std::min(kPage, size_ - p * kPage);
      if (Read(p * kPage, n) != o.Read(p * kPage, n)) return false;
    }
    return true;
  }

 private:
  uint64_t size_ = 0;
  std::map<uint64_t, std::string> pages_;
};

// One write or zeroing since the last completed flush.
struct LoggedChange {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string data;  // empty: zeros
  char At(uint64_t i) const { return data.empty() ? '\0' : data[i - offset]; }
};

struct ModelVolume {
  uint32_t block_size = 0;
  SparseBytes cur;
  SparseBytes durable;
  std::vector<LoggedChange> log;
  std::set<uint64_t> other_sizes;  // sizes a crash may also leave (a resize that did not complete)
  std::map<std::string, SparseBytes> snaps;

  void Write(uint64_t off, std::string data) {
    cur.Write(off, data);
    uint64_t n = data.size();
    log.push_back({off, n, std::move(data)});
  }
  void Zero(uint64_t off, uint64_t len) {
    cur.Zero(off, len);
    log.push_back({off, len, {}});
  }
  // A completed flush: everything is durable, including the size.
  void Flushed() {
    durable = cur;
    log.clear();
    other_sizes.clear();
  }
  // Forget the past: after recovery, what was read back is the new truth.
  void Rebase(const SparseBytes& content) {
    cur = content;
    Flushed();
  }
};

}  // namespace skerry::crash
