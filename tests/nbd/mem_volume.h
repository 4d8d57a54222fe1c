// MemVolume: a skerry::Volume kept in memory, for NBD tests only.
//
// It stands in for the real volume layer (src/volume) so the NBD server can be
// tested alone. Storage is a vector of fixed-size blocks; a block never written
// (or trimmed away) is a hole, so Extents() reports holes and zeros the way a
// volume map does. Faults can be injected: every I/O touching a chosen range fails
// with a chosen Status, to test how errors reach clients.
//
// Thread-safety: I/O methods may be called concurrently; each block has its own
// lock, so requests to different blocks never wait for each other.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "skerry/volume.h"
#include "util/volume_fast_paths.h"

namespace skerry::nbd::testing {

class MemVolume final : public Volume, public VolumeFastPaths {
 public:
  MemVolume(std::string name, uint64_t size, uint32_t block_size = 64 * 1024,
            bool read_only = false);
  ~MemVolume() override;  // completes queued asynchronous reads, joins their thread

  const std::string& name() const override { return name_; }
  std::string volume_id() const override { return std::string(32, '0'); }
  uint64_t size() const override { return size_; }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return read_only_; }

  Status Read(uint64_t offset, std::span<char> out) override;
  // With EnableAsyncReads, reads complete on a thread of the volume, newest first (so
  // replies go out of order), as on a natively asynchronous store.
  void ReadAsync(uint64_t offset, std::span<char> out, Done done) override;
  bool async_reads() const { return async_thread_.joinable(); }
  Caps fast_paths() const override { return Caps{async_reads(), pipe_reads_, async_reads()}; }
  // With EnablePipeReads, zero-copy reads as on the directory store: write() into the
  // pipe stands in for splice. A read over the fault range first puts the bytes before
  // it into the pipe, then fails, like a store that failed half-way.
  bool pipe_reads() const { return pipe_reads_; }
  Status ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) override;
  Status Write(uint64_t offset, std::span<const char> data, bool fua = false) override;
  // With EnableAsyncReads, writes into blocks written before complete on that thread too
  // (applied there, out of order), as on an asynchronous store; else false.
  bool TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) override;
  uint64_t async_writes_done() const { return async_writes_done_.load(); }
  Status Trim(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua = false) override;
  Status Flush() override;
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override;
  Status CreateSnapshot(const std::string& snap) override;
  Status Resize(uint64_t new_size, bool allow_shrink) override;
  Status Close() override { return Status::OK(); }

  // Test helpers.
  // Writes `byte` over [offset, offset+length), ignoring read_only.
  void Fill(uint64_t offset, uint64_t length, char byte);
  // From now on, I/O overlapping [offset, offset+length) fails with `error`.
  void InjectFault(uint64_t offset, uint64_t length, Status error);
  uint64_t flushes() const { return flushes_.load(); }
  uint64_t fua_writes() const { return fua_writes_.load(); }
  // Call before the volume is shared.
  void EnableAsyncReads();
  void EnablePipeReads() { pipe_reads_ = true; }
  // Each write sleeps this long first, as on a slow store.
  void SetWriteDelay(std::chrono::milliseconds delay) { write_delay_ms_ = delay.count(); }
  // The threads that ran Write, one entry per call, in the order the calls began.
  std::vector<std::thread::id> write_threads() const;
  uint64_t pipe_reads_done() const { return pipe_reads_done_.load(); }

 private:
  struct Block {
    std::mutex mu;
    std::unique_ptr<char[]> data;  // null: hole
    bool known_zero = false;       // allocated by WriteZeroes without trim
  };
  // Calls fn(block, offset in block, length in block, offset in request) per block.
  template <class Fn>
  void ForEachBlock(uint64_t offset, uint64_t length, Fn fn);
  Status Check(uint64_t offset, uint64_t length, bool write) const;
  Status ZeroRange(uint64_t offset, uint64_t length, bool may_trim);

  const std::string name_;
  const uint64_t size_;
  const uint32_t block_size_;
  const bool read_only_;
  std::vector<Block> blocks_;
  std::atomic<uint64_t> flushes_{0};
  std::atomic<uint64_t> fua_writes_{0};
  bool pipe_reads_ = false;
  std::atomic<int64_t> write_delay_ms_{0};
  mutable std::mutex write_threads_mu_;
  std::vector<std::thread::id> write_threads_;  // GUARDED_BY(write_threads_mu_)
  std::atomic<uint64_t> async_writes_done_{0};
  std::atomic<uint64_t> pipe_reads_done_{0};
  mutable std::mutex fault_mu_;
  std::optional<std::pair<uint64_t, uint64_t>> fault_range_;
  Status fault_;

  struct PendingRead {  // or a write, when `in` is set
    uint64_t offset;
    std::span<char> out;
    Done done;
    std::span<const char> in = {};
  };
  std::mutex async_mu_;
  std::condition_variable async_cv_;
  std::vector<PendingRead> async_queue_;  // GUARDED_BY(async_mu_)
  bool async_stop_ = false;               // GUARDED_BY(async_mu_)
  std::thread async_thread_;
};

}  // namespace skerry::nbd::testing
