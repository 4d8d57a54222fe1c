#include "volume/handoff_volume.h"

#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <utility>

namespace skerry::volume {
namespace {

int64_t SteadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Result<std::unique_ptr<HandoffVolume>> HandoffVolume::Open(std::shared_ptr<ObjectStore> store, std::string name,
                                                           const VolumeId& id, std::string owner, Opener opener,
                                                           const VolumeOptions& volume_options,
                                                           std::function<void(const std::string&)> on_handoff) {
  const StoreCapabilities sc = store->capabilities();
  const Caps caps{sc.native_async, sc.pipe_reads, sc.native_async};
  Result<std::unique_ptr<OpenVolume>> w = opener.writer();
  if (!w.ok() && w.status().code() != Code::kBusy) return w.status();
  std::unique_ptr<OpenVolume> writer;
  uint64_t size = 0;
  uint32_t block_size = 0;
  if (w.ok()) {
    writer = std::move(*w);
    size = writer->size();
    block_size = writer->block_size();
  } else {
    SKERRY_ASSIGN_OR_RETURN(auto reader, opener.reader());
    size = reader->size();
    block_size = reader->block_size();
    (void)reader->Close();
  }
  std::unique_ptr<HandoffVolume> v(new HandoffVolume(std::move(store), std::move(name), id, std::move(owner),
                                                     std::move(opener), volume_options, std::move(on_handoff),
                                                     size, block_size, caps));
  if (writer) {
    v->writer_ = std::move(writer);
    v->role_.store(VolumeRole::kWriter);
    v->SchedulePoll();
  } else {
    v->Tell(fmt::format("{}: opened as a standby ({})", v->name_, w.status().message()));
  }
  return v;
}

HandoffVolume::HandoffVolume(std::shared_ptr<ObjectStore> store, std::string name, const VolumeId& id,
                             std::string owner, Opener opener, const VolumeOptions& options,
                             std::function<void(const std::string&)> on_handoff, uint64_t size,
                             uint32_t block_size, Caps caps)
    : store_(std::move(store)),
      name_(std::move(name)),
      id_(id),
      owner_(std::move(owner)),
      opener_(std::move(opener)),
      clock_(options.clock ? options.clock : Clock::Real()),
      poll_ms_(options.handoff_poll_ms),
      wait_ms_(options.handoff_wait_ms),
      on_handoff_(std::move(on_handoff)),
      block_size_(block_size),
      caps_(caps),
      channel_(*store_, id),
      size_(size) {}

HandoffVolume::~HandoffVolume() { Close(); }

// ---------------------------------------------------------------- I/O

Status HandoffVolume::HandedOverError() const {
  return Status::IOError(fmt::format(
      "{}: handed over to '{}'; this open writes no more (its VM moved, or another VM uses the volume): "
      "a new connection may take it back",
      name_, handed_to_));
}

Status HandoffVolume::ReadAsOf(const std::function<Status(OpenVolume&)>& fn) {
  SKERRY_ASSIGN_OR_RETURN(auto reader, opener_.reader());
  Status st = fn(*reader);
  (void)reader->Close();
  return st;
}

Status HandoffVolume::AsWriter(const std::function<Status(OpenVolume&)>& fn) {
  for (int attempt = 0;; attempt++) {
    {
      SharedGate gate(gate_);
      if (closed_) return Status::InvalidArgument(fmt::format("{} is closed", name_));
      if (writer_) return fn(*writer_);
      if (role_.load() == VolumeRole::kHandedOver) return HandedOverError();
    }
    // Taken, then handed over again before this write got in: the next open's turn.
    if (attempt > 0) return Status::IOError(fmt::format("{}: handed over again while taking it over", name_));
    SKERRY_RETURN_IF_ERROR(TakeOver());
  }
}

Status HandoffVolume::Read(uint64_t offset, std::span<char> out) {
  SharedGate gate(gate_);
  if (writer_) return writer_->Read(offset, out);
  return ReadAsOf([&](OpenVolume& v) { return v.Read(offset, out); });
}

Status HandoffVolume::Write(uint64_t offset, std::span<const char> data, bool fua) {
  return AsWriter([&](OpenVolume& v) { return v.Write(offset, data, fua); });
}

Status HandoffVolume::Trim(uint64_t offset, uint64_t length) {
  return AsWriter([&](OpenVolume& v) { return v.Trim(offset, length); });
}

Status HandoffVolume::WriteZeroes(uint64_t offset, uint64_t length, bool may_trim, bool fua) {
  return AsWriter([&](OpenVolume& v) { return v.WriteZeroes(offset, length, may_trim, fua); });
}

Status HandoffVolume::Flush() {
  SharedGate gate(gate_);
  if (writer_) return writer_->Flush();
  return Status::OK();  // nothing acknowledged here is not durable (see the header)
}

Result<std::vector<Extent>> HandoffVolume::Extents(uint64_t offset, uint64_t length) {
  SharedGate gate(gate_);
  if (writer_) return writer_->Extents(offset, length);
  SKERRY_ASSIGN_OR_RETURN(auto reader, opener_.reader());
  auto extents = reader->Extents(offset, length);
  (void)reader->Close();
  return extents;
}

Status HandoffVolume::CreateSnapshot(const std::string& snap) {
  SharedGate gate(gate_);
  if (!writer_) return Status::Busy(fmt::format("{} is a {} here: another open writes it", name_, VolumeRoleName(role_.load())));
  return writer_->CreateSnapshot(snap);
}

Status HandoffVolume::Resize(uint64_t new_size, bool allow_shrink) {
  SharedGate gate(gate_);
  if (!writer_) return Status::Busy(fmt::format("{} is a {} here: another open writes it", name_, VolumeRoleName(role_.load())));
  Status st = writer_->Resize(new_size, allow_shrink);
  size_.store(writer_->size());
  return st;
}

void HandoffVolume::ReadAsync(uint64_t offset, std::span<char> out, Done done) {
  gate_.EnterShared();
  if (writer_) {
    // The gate is left before `done` runs: a `done` that closes the volume must not wait for it.
    writer_->ReadAsync(offset, out, [this, done = std::move(done)](Status st) mutable {
      gate_.LeaveShared();
      done(std::move(st));
    });
    return;
  }
  Status st = ReadAsOf([&](OpenVolume& v) { return v.Read(offset, out); });
  gate_.LeaveShared();
  done(std::move(st));
}

Status HandoffVolume::ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) {
  SharedGate gate(gate_);
  if (writer_) return writer_->ReadToPipe(offset, length, pipe_fd);
  return ReadAsOf([&](OpenVolume& v) { return v.ReadToPipe(offset, length, pipe_fd); });
}

bool HandoffVolume::TryWriteAsync(uint64_t offset, std::span<const char> data, Done done) {
  gate_.EnterShared();
  if (!writer_) {  // Write takes the volume over first
    gate_.LeaveShared();
    return false;
  }
  bool taken = writer_->TryWriteAsync(offset, data, [this, done = std::move(done)](Status st) mutable {
    gate_.LeaveShared();
    done(std::move(st));
  });
  if (!taken) gate_.LeaveShared();
  return taken;
}

// ---------------------------------------------------------------- standby -> writer

Status HandoffVolume::TakeOver() {
  ExclusiveGate gate(gate_);  // this open's I/O waits until it is the writer (or gave up)
  if (closed_) return Status::InvalidArgument(fmt::format("{} is closed", name_));
  if (writer_) return Status::OK();  // another call took it over meanwhile
  if (role_.load() == VolumeRole::kHandedOver) return HandedOverError();
  const int64_t start = SteadyMs();
  std::optional<HandoffChannel::Request> asked;
  for (;;) {
    Result<std::unique_ptr<OpenVolume>> w = opener_.writer();
    if (w.ok()) {
      writer_ = std::move(*w);
      size_.store(writer_->size());
      role_.store(VolumeRole::kWriter);
      if (asked) channel_.Clear(*asked);
      Tell(fmt::format("{}: handoff: took the write lock in {} ms{}", name_, SteadyMs() - start,
                       asked ? " (asked its holder to hand over)" : " (it was free)"));
      break;
    }
    if (w.status().code() != Code::kBusy) {
      if (asked) channel_.Clear(*asked);
      return w.status();
    }
    if (!asked) {
      SKERRY_ASSIGN_OR_RETURN(asked, channel_.Ask(owner_));
    }
    if (SteadyMs() - start >= wait_ms_) {
      channel_.Clear(*asked);
      Status refused = Status::IOError(fmt::format(
          "{}: the writer did not hand the volume over within {} ms (an exclusive open, or one that cannot "
          "flush or does not answer): {}",
          name_, wait_ms_, w.status().message()));
      Tell(refused.message());
      return refused;
    }
    // The holder looks for requests every handoff_poll_ms and then flushes: a short wait.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  SchedulePoll();
  return Status::OK();
}

// ---------------------------------------------------------------- writer -> handed over

void HandoffVolume::SchedulePoll() {
  MutexLock lock(&mu_);
  if (stopped_ || poll_ms_ <= 0 || poll_ != 0) return;
  poll_ = clock_->Schedule(poll_ms_, [this] { Poll(); });
}

void HandoffVolume::Poll() {
  {
    MutexLock lock(&mu_);
    running_ = std::exchange(poll_, 0);  // for Close to wait for
    if (stopped_ || handing_over_) return;
  }
  // A request older than a requester waits is left over: never hand over to nobody.
  Result<HandoffChannel::Request> request = channel_.Pending(wait_ms_);
  if (request.ok() && !request->requester.empty() && request->requester != owner_) {
    MutexLock lock(&mu_);
    if (stopped_) return;
    // Not on the clock's thread: draining and flushing may take long, and other volumes'
    // leases are renewed there.
    if (handover_.joinable()) handover_.join();  // a finished one
    handing_over_ = true;
    handover_ = std::thread([this, r = *request] { HandOver(r); });
    return;
  }
  SchedulePoll();
}

void HandoffVolume::HandOver(HandoffChannel::Request request) {
  const int64_t start = SteadyMs();
  bool still_writer = false;
  {
    ExclusiveGate gate(gate_);  // new I/O held, in-flight I/O drained
    if (!closed_ && writer_) {
      // Everything acknowledged durable before the lock goes; if that fails, keep the lock
      // (the requester's wait runs out) rather than lose an acknowledged write.
      Status st = writer_->Flush();
      if (!st.ok()) {
        still_writer = true;
        Tell(fmt::format("{}: handoff to '{}' refused: the flush before it failed: {}", name_, request.requester,
                         st.ToString()));
      } else {
        // Handed over from here on: said before the lock goes, or the requester could write
        // while role() here still says writer.
        handed_to_ = request.requester;
        role_.store(VolumeRole::kHandedOver);
        Status closed = writer_->Close();  // stops the lease and releases the lock
        writer_.reset();
        channel_.Clear(request);
        Tell(fmt::format("{}: handoff: handed over to '{}' in {} ms{}", name_, request.requester, SteadyMs() - start,
                         closed.ok() ? "" : " (releasing the lock failed, it lapses: " + closed.ToString() + ")"));
      }
    }
  }
  {
    MutexLock lock(&mu_);
    handing_over_ = false;
  }
  if (still_writer) SchedulePoll();
}

// ---------------------------------------------------------------- close

Status HandoffVolume::Close() {
  Clock::TaskId poll, running;
  {
    MutexLock lock(&mu_);
    stopped_ = true;
    poll = std::exchange(poll_, 0);
    running = running_;
  }
  // Each waits for the poll if it runs now (one still reading the request uses this open);
  // none starts after.
  if (poll != 0) clock_->Cancel(poll);
  if (running != 0) clock_->Cancel(running);
  std::thread handover;
  {
    MutexLock lock(&mu_);
    handover = std::move(handover_);
  }
  if (handover.joinable()) handover.join();
  ExclusiveGate gate(gate_);
  if (closed_) return Status::OK();
  closed_ = true;
  Status st;
  if (writer_) {
    st = writer_->Close();
    writer_.reset();
  }
  return st;
}

}  // namespace skerry::volume
