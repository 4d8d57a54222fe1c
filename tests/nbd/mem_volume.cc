#include "mem_volume.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

namespace skerry::nbd::testing {

MemVolume::MemVolume(std::string name, uint64_t size, uint32_t block_size, bool read_only)
    : name_(std::move(name)),
      size_(size),
      block_size_(block_size),
      read_only_(read_only),
      blocks_((size + block_size - 1) / block_size) {}

MemVolume::~MemVolume() {
  if (!async_thread_.joinable()) return;
  {
    std::lock_guard lock(async_mu_);
    async_stop_ = true;
  }
  async_cv_.notify_all();
  async_thread_.join();
}

void MemVolume::EnableAsyncReads() {
  async_thread_ = std::thread([this] {
    std::unique_lock lock(async_mu_);
    for (;;) {
      async_cv_.wait(lock, [&] { return async_stop_ || !async_queue_.empty(); });
      if (async_queue_.empty()) return;
      // A little wait lets reads pile up, so they complete newest first.
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      lock.lock();
      std::vector<PendingRead> batch;
      batch.swap(async_queue_);
      lock.unlock();
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        if (it->in.data()) {
          Status st = Write(it->offset, it->in);
          async_writes_done_++;
          it->done(std::move(st));
        } else {
          it->done(Read(it->offset, it->out));
        }
      }
      lock.lock();
    }
  });
}

void MemVolume::ReadAsync(uint64_t offset, std::span<char> out, Done done) {
  if (!async_thread_.joinable()) return done(Read(offset, out));
  {
    std::lock_guard lock(async_mu_);
    async_queue_.push_back({offset, out, std::move(done)});
  }
  async_cv_.notify_one();
}

template <class Fn>
void MemVolume::ForEachBlock(uint64_t offset, uint64_t length, Fn fn) {
  uint64_t done = 0;
  while (done < length) {
    uint64_t pos = offset + done;
    uint64_t index = pos / block_size_;
    uint64_t in_block = pos % block_size_;
    uint64_t n = std::min<uint64_t>(length - done, block_size_ - in_block);
    fn(blocks_[index], in_block, n, done);
    done += n;
  }
}

Status MemVolume::Check(uint64_t offset, uint64_t length, bool write) const {
  if (offset > size_ || length > size_ - offset) {
    return Status::InvalidArgument("range beyond the end of " + name_);
  }
  if (write && read_only_) return Status::ReadOnly(name_ + " is read-only");
  std::lock_guard lock(fault_mu_);
  if (fault_range_ && offset < fault_range_->first + fault_range_->second &&
      fault_range_->first < offset + length) {
    return fault_;
  }
  return Status::OK();
}

Status MemVolume::Read(uint64_t offset, std::span<char> out) {
  SKERRY_RETURN_IF_ERROR(Check(offset, out.size(), false));
  ForEachBlock(offset, out.size(), [&](Block& b, uint64_t in_block, uint64_t n, uint64_t at) {
    std::lock_guard lock(b.mu);
    if (b.data) {
      std::memcpy(out.data() + at, b.data.get() + in_block, n);
    } else {
      std::memset(out.data() + at, 0, n);
    }
  });
  return Status::OK();
}

bool MemVolume::TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) {
  if (!async_thread_.joinable() || data.empty() || !Check(offset, data.size(), true).ok()) return false;
  bool all_written = true;
  ForEachBlock(offset, data.size(), [&](Block& b, uint64_t, uint64_t, uint64_t) {
    std::lock_guard lock(b.mu);
    all_written = all_written && b.data != nullptr;
  });
  if (!all_written) return false;  // like a hole of a real volume: the blocking path
  {
    std::lock_guard lock(async_mu_);
    async_queue_.push_back({offset, {}, std::move(done), data});
  }
  async_cv_.notify_one();
  return true;
}

Status MemVolume::ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) {
  if (!pipe_reads_) return Status::NotSupported(name_ + ": no zero-copy reads");
  Status st = Check(offset, length, false);
  uint64_t good = length;
  if (!st.ok()) {
    std::lock_guard lock(fault_mu_);
    if (!fault_range_ || fault_range_->first <= offset) return st;
    good = fault_range_->first - offset;  // what lies before the fault goes in first
  }
  std::string data(good, '\0');
  SKERRY_RETURN_IF_ERROR(Read(offset, std::span<char>(data.data(), data.size())));
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::write(pipe_fd, data.data() + done, data.size() - done);
    if (n < 0) return Status::FromErrno(errno, "write to pipe");
    done += static_cast<size_t>(n);
  }
  pipe_reads_done_++;
  return st;
}

std::vector<std::thread::id> MemVolume::write_threads() const {
  std::lock_guard lock(write_threads_mu_);
  return write_threads_;
}

Status MemVolume::Write(uint64_t offset, std::span<const char> data, bool fua) {
  {
    std::lock_guard lock(write_threads_mu_);
    write_threads_.push_back(std::this_thread::get_id());
  }
  SKERRY_RETURN_IF_ERROR(Check(offset, data.size(), true));
  if (int64_t ms = write_delay_ms_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  ForEachBlock(offset, data.size(), [&](Block& b, uint64_t in_block, uint64_t n, uint64_t at) {
    std::lock_guard lock(b.mu);
    if (!b.data) b.data.reset(new char[block_size_]());
    std::memcpy(b.data.get() + in_block, data.data() + at, n);
    b.known_zero = false;
  });
  if (fua) fua_writes_++;
  return Status::OK();
}

Status MemVolume::ZeroRange(uint64_t offset, uint64_t length, bool may_trim) {
  ForEachBlock(offset, length, [&](Block& b, uint64_t in_block, uint64_t n, uint64_t) {
    std::lock_guard lock(b.mu);
    if (n == block_size_ && may_trim) {  // a whole block: back to a hole
      b.data.reset();
      b.known_zero = false;
      return;
    }
    if (!b.data) {
      if (may_trim) return;  // a hole already reads as zeros
      b.data.reset(new char[block_size_]());
      b.known_zero = n == block_size_;
      return;
    }
    std::memset(b.data.get() + in_block, 0, n);
    if (n == block_size_) b.known_zero = true;
  });
  return Status::OK();
}

Status MemVolume::Trim(uint64_t offset, uint64_t length) {
  SKERRY_RETURN_IF_ERROR(Check(offset, length, true));
  return ZeroRange(offset, length, true);
}

Status MemVolume::WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua) {
  SKERRY_RETURN_IF_ERROR(Check(offset, length, true));
  if (fua) fua_writes_++;
  return ZeroRange(offset, length, may_trim);
}

Status MemVolume::Flush() {
  {
    std::lock_guard lock(fault_mu_);
    if (fault_range_) return fault_;
  }
  flushes_++;
  return Status::OK();
}

Result<std::vector<Extent>> MemVolume::Extents(uint64_t offset, uint64_t length) {
  SKERRY_RETURN_IF_ERROR(Check(offset, length, false));
  std::vector<Extent> out;
  ForEachBlock(offset, length, [&](Block& b, uint64_t, uint64_t n, uint64_t at) {
    bool hole, zero;
    {
      std::lock_guard lock(b.mu);
      hole = !b.data;
      zero = hole || b.known_zero;
    }
    if (!out.empty() && out.back().hole == hole && out.back().zero == zero) {
      out.back().length += n;
    } else {
      out.push_back({offset + at, n, hole, zero});
    }
  });
  return out;
}

Status MemVolume::CreateSnapshot(const std::string&) {
  return Status::NotSupported("MemVolume has no snapshots");
}

Status MemVolume::Resize(uint64_t, bool) { return Status::NotSupported("MemVolume cannot resize"); }

void MemVolume::Fill(uint64_t offset, uint64_t length, char byte) {
  ForEachBlock(offset, length, [&](Block& b, uint64_t in_block, uint64_t n, uint64_t) {
    std::lock_guard lock(b.mu);
    if (!b.data) b.data.reset(new char[block_size_]());
    std::memset(b.data.get() + in_block, byte, n);
    b.known_zero = false;
  });
}

void MemVolume::InjectFault(uint64_t offset, uint64_t length, Status error) {
  std::lock_guard lock(fault_mu_);
  fault_range_ = std::make_pair(offset, length);
  fault_ = std::move(error);
}

}  // namespace skerry::nbd::testing
