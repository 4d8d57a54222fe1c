// HandoffVolume: a cooperative open of a volume's head (Handoff::kCooperative in
// include/skerry/volume.h), the piece that lets a VM's disk follow it to another host.
//
// It is a writer (an OpenVolume holding the write lock), a standby (no lock; reads served from
// the volume as last flushed), or handed over (gave the lock to another open; reads only). The
// moves between them:
//
//   standby -> writer       the first write, trim or zeroing: take the lock if free, else ask
//                           its holder (HandoffChannel) and wait until it is released, then
//                           open the head afresh (header and map as the holder left them).
//   writer -> handed over   a poll on the clock finds another open's request: a thread of its
//                           own holds new I/O, drains what is in flight, flushes, and closes
//                           the head, which releases the lock. A flush that fails keeps the lock
//                           (nothing acknowledged may be lost); the requester's wait runs out.
//
// A handed-over open never takes the lock back: its clients belong to a VM that moved (a
// migration's source QEMU) or to a second VM started by mistake on a volume in use, and a
// write from either after another open wrote would corrupt the disk. It fails such writes
// loudly. A new open (the next migration back) is a standby again.
//
// A flush on a standby or handed-over open succeeds at once: everything it acknowledged was
// flushed when it handed over, and asking for the lock to flush nothing would pull the volume
// back from the open that now writes it (QEMU's source flushes as it quits).
//
// Concurrency: every call holds gate_ shared while it uses writer_ (an asynchronous read until
// it completes); the moves hold it exclusively, so in-flight I/O drains before the head goes.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "skerry/volume.h"
#include "util/mutex.h"
#include "util/volume_fast_paths.h"
#include "volume/handoff_channel.h"
#include "volume/io_gate.h"
#include "volume/open_volume.h"

namespace skerry::volume {

class HandoffVolume final : public Volume, public VolumeFastPaths {
 public:
  // How the volume's head is opened; the catalog supplies both.
  struct Opener {
    // Takes the write lock (Busy naming the holder when another has it) and opens the head
    // read-write from the header as it is now.
    std::function<Result<std::unique_ptr<OpenVolume>>()> writer;
    // Opens the head read-only from the header as it is now.
    std::function<Result<std::unique_ptr<OpenVolume>>()> reader;
  };

  // A writer if the lock is free (or `owner`'s), else a standby.
  static Result<std::unique_ptr<HandoffVolume>> Open(std::shared_ptr<ObjectStore> store, std::string name,
                                                     const VolumeId& id, std::string owner, Opener opener,
                                                     const VolumeOptions& volume_options,
                                                     std::function<void(const std::string&)> on_handoff);
  ~HandoffVolume() override;

  const std::string& name() const override { return name_; }
  std::string volume_id() const override { return id_.Hex(); }
  uint64_t size() const override { return size_.load(); }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return false; }
  VolumeRole role() const override { return role_.load(); }

  Status Read(uint64_t offset, std::span<char> out) override;
  Status Write(uint64_t offset, std::span<const char> data, bool fua) override;
  Status Trim(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua) override;
  Status Flush() override;
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override;
  Status CreateSnapshot(const std::string& snap) override;
  Status Resize(uint64_t new_size, bool allow_shrink) override;
  Status Close() override;

  Caps fast_paths() const override { return caps_; }
  void ReadAsync(uint64_t offset, std::span<char> out, Done done) override;
  Status ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) override;
  bool TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) override;

 private:
  HandoffVolume(std::shared_ptr<ObjectStore> store, std::string name, const VolumeId& id, std::string owner,
                Opener opener, const VolumeOptions& options, std::function<void(const std::string&)> on_handoff,
                uint64_t size, uint32_t block_size, Caps caps);

  // Runs `fn` on the writer, taking the lock first when this is a standby. For writes.
  Status AsWriter(const std::function<Status(OpenVolume&)>& fn);
  // standby -> writer. REQUIRES: gate_ not held by this thread.
  Status TakeOver();
  // A read on a standby or handed-over open: from a head opened for it, as flushed now.
  Status ReadAsOf(const std::function<Status(OpenVolume&)>& fn);
  Status HandedOverError() const;

  // The writer's poll for requests, on the clock, and the handover it starts.
  void SchedulePoll() EXCLUDES(mu_);
  void Poll() EXCLUDES(mu_);
  void HandOver(HandoffChannel::Request request);
  void Tell(const std::string& line) const {
    if (on_handoff_) on_handoff_(line);
  }

  const std::shared_ptr<ObjectStore> store_;
  const std::string name_;
  const VolumeId id_;
  const std::string owner_;
  const Opener opener_;
  const std::shared_ptr<Clock> clock_;
  const int64_t poll_ms_;
  const int64_t wait_ms_;
  const std::function<void(const std::string&)> on_handoff_;
  const uint32_t block_size_;
  const Caps caps_;
  HandoffChannel channel_;
  std::atomic<uint64_t> size_;
  std::atomic<VolumeRole> role_{VolumeRole::kStandby};

  IoGate gate_;
  std::unique_ptr<OpenVolume> writer_;  // set and reset under gate_ exclusively
  std::string handed_to_;               // under gate_ exclusively; read under it shared
  bool closed_ = false;                 // under gate_ exclusively

  Mutex mu_;
  bool stopped_ GUARDED_BY(mu_) = false;      // Close began: no more polls or handovers
  Clock::TaskId poll_ GUARDED_BY(mu_) = 0;    // the poll scheduled, 0: none
  Clock::TaskId running_ GUARDED_BY(mu_) = 0; // the last poll that ran (or runs now)
  bool handing_over_ GUARDED_BY(mu_) = false; // a handover thread runs
  std::thread handover_ GUARDED_BY(mu_);
};

}  // namespace skerry::volume
