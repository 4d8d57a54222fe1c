// CopyUpQueue: the deferred copy-up engine of an open head (docs/architecture.md, "Deferred
// copy-up").
//
// On a store without native asynchronous I/O, the first write into a block shared with a
// snapshot does not wait for the block's copy: the write is held in memory and acknowledged,
// and a copier thread copies the block, applies the held writes in the order they were
// acknowledged and only then has the map name the new object. Later writes to the block join
// the held ones while the copy-up is pending. Reads, trims and zeroes of that block, and every
// flush, wait for it (or run it themselves); a copy-up that fails keeps its held writes and is
// retried by the next flush, which fails until it succeeds, so a flush never succeeds over a
// lost write. Like any write, a held one is durable only after a flush.
//
// The queue owns the state machine (queued, running, failed), the held writes and their
// bounds, and the copier threads. The volume supplies the per-block steps through CopyUpHost:
// the copy, writing held extents, and the map change.
//
// Bounds on held bytes: a block holds at most its own size; a volume at most
// `max_held_per_volume`; every volume of the process together at most what `process_budget`
// allows. Past them a write waits for (or runs) its block's copy-up instead of being held.
//
// Thread-safety: all methods may be called from any thread. Lock order: the volume's block
// lock, then this queue's mutex, then the map's own.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "skerry/status.h"
#include "util/memory_budget.h"
#include "util/mutex.h"
#include "volume/format.h"

namespace skerry::volume {

// A held write's bytes, as the held writes of one block leave them: non-overlapping extents
// in offset order (a later write wins where writes overlap, as if applied one by one).
// Why coalesce: on a store where each write is a network round trip (RADOS), applying a
// block's held small writes one after another cannot keep up with writers that keep adding
// more (bench/results/2026-11-nbd-coalesced-held-writes.md); extents that do not overlap can
// all be in flight at once, and a range written many times is written once.
struct HeldExtent {
  uint64_t off;
  std::string_view data;  // points into the held write it came from
};

class HeldWriteOverlay {
 public:
  // Lays `data` at `off` over what is there. The bytes are not copied: `data` must stay
  // valid while this overlay or its extents are used.
  void Add(uint64_t off, std::string_view data);
  // The extents in offset order; adjacent ones are not merged (that would copy).
  std::vector<HeldExtent> Extents() const;

 private:
  std::map<uint64_t, std::string_view> pieces_;  // offset -> bytes; never overlapping
};

// One block's copy-up, as the volume's steps see it.
struct CopyUpJob {
  uint64_t block = 0;
  Entry source;        // the shared block's entry, released when the copy replaces it
  std::string target;  // the volume's object of the current epoch
  // Whether the source goes once the map names the copy: decided by CopyBlock before the
  // copy (it may read a snapshot's map), acted on by Land.
  bool release_source = false;
};

// The volume's part of a copy-up.
class CopyUpHost {
 public:
  virtual ~CopyUpHost() = default;
  // OK while the volume may write (its lease holds). Asked before the copy, before each batch
  // of held writes and before the map change, under the queue's mutex.
  virtual Status MayWrite(uint64_t block) = 0;
  // Copies the shared block into the target, afresh; decides job.release_source.
  virtual Status CopyBlock(CopyUpJob& job) = 0;
  // Writes coalesced held writes into the target.
  virtual Status WriteHeld(const CopyUpJob& job, const std::vector<HeldExtent>& extents) = 0;
  // Nothing is left to apply: the map names the target from now on (and the source's delete
  // is queued if job.release_source). Runs under the queue's mutex, so no write is held
  // meanwhile; must not call back into the queue.
  virtual Status Land(const CopyUpJob& job) = 0;
};

class CopyUpQueue {
 public:
  // `copier_threads` 0: copy-ups run only when someone needs them done (on demand).
  CopyUpQueue(CopyUpHost& host, std::string volume_name, uint32_t block_size, int copier_threads,
              std::shared_ptr<MemoryBudget> process_budget, uint64_t max_held_per_volume);
  ~CopyUpQueue() { Stop(); }

  // Whether any copy-up is pending: the readers' fast path looks here first.
  bool any_pending() const { return pending_.load() > 0; }
  bool Has(uint64_t block) EXCLUDES(mu_);

  // Adds a write to the held writes of the block's pending copy-up, if there is one and the
  // bounds allow. REQUIRES: the block's lock held (so no copy-up of it starts meanwhile).
  enum class Hold { kHeld, kNoCopyUp, kFull };
  Hold HoldIfPending(uint64_t block, uint64_t off, std::span<const char> data) EXCLUDES(mu_);
  // Starts a copy-up of shared block `block` (entry `source`, into `target`) holding this
  // first write. False (nothing started) when over the bounds, or stopped.
  // REQUIRES: the block's lock held.
  bool Start(uint64_t block, const Entry& source, std::string target, uint64_t off, std::span<const char> data)
      EXCLUDES(mu_);

  // Until block `block` has no pending copy-up: waits while a copier runs it, runs it here
  // when it is queued or failed before. Its error if it fails here.
  Status Finish(uint64_t block) EXCLUDES(mu_);
  // Claims the block's pending copy-up (waits while someone else runs it), for the caller to
  // replace with the whole block's new content; false when there is none. While claimed,
  // reads and flushes wait for it. EndClaim ends it: `replaced`, the new content is in place
  // and the copy-up with its held writes is forgotten; else it stays, failed, for the next
  // flush or read to retry (what it holds was acknowledged).
  bool Claim(uint64_t block) EXCLUDES(mu_);
  void EndClaim(uint64_t block, bool replaced) EXCLUDES(mu_);

  // The sequence number of the latest copy-up started (Flush finishes those up to it).
  uint64_t last_started() EXCLUDES(mu_);
  // Finishes every copy-up started at or before `seq`; the first error.
  Status FinishStartedUpTo(uint64_t seq) EXCLUDES(mu_);

  // Runs `task` on a copier thread (started if need be), or here when there are none. For
  // an asynchronous read that must wait for a copy-up and may not wait on its own thread.
  void RunOnCopier(std::function<void()> task) EXCLUDES(mu_);
  // What a copier thread does, run here: up to `n` queued copy-ups, oldest first; how many
  // ran. For a seeded run that decides itself when background work happens.
  int RunQueued(int n) EXCLUDES(mu_);

  // Stops the copiers and drops what is still held (Close reports why).
  void Stop() EXCLUDES(mu_);

 private:
  struct HeldWrite {
    uint64_t off;
    std::string data;
  };
  struct CopyUp {
    enum class State { kQueued, kRunning, kFailed } state = State::kQueued;
    CopyUpJob job;
    uint64_t seq = 0;  // start order
    // Acknowledged writes, applied in order after each copy attempt. A deque: a copier reads
    // elements outside the mutex while writers append (push_back keeps references valid).
    std::deque<HeldWrite> held;
    uint64_t held_bytes = 0;
  };
  using Map = std::map<uint64_t, CopyUp>;

  // Copies, applies the held writes and lands. REQUIRES: the caller marked it running.
  Status Run(uint64_t block) EXCLUDES(mu_);
  bool AddHeldWrite(CopyUp& c, uint64_t off, std::span<const char> data) REQUIRES(mu_);
  void Forget(Map::iterator it) REQUIRES(mu_);
  void StartCopiersLocked() REQUIRES(mu_);
  void CopierLoop() EXCLUDES(mu_);

  CopyUpHost& host_;
  const std::string volume_name_;
  const uint32_t block_size_;
  const int copier_threads_;
  const std::shared_ptr<MemoryBudget> process_budget_;
  const uint64_t max_held_per_volume_;

  Mutex mu_;
  CondVar done_cv_;    // a copy-up finished or failed
  CondVar copier_cv_;  // the queue grew, or the copiers must stop
  Map copyups_ GUARDED_BY(mu_);  // by block
  std::deque<uint64_t> queue_ GUARDED_BY(mu_);
  std::deque<std::function<void()>> tasks_ GUARDED_BY(mu_);  // reads waiting for a copy-up
  uint64_t seq_ GUARDED_BY(mu_) = 0;
  uint64_t held_bytes_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> copiers_;  // started with the first deferred copy-up
  std::atomic<int> pending_{0};       // copyups_.size()
};

}  // namespace skerry::volume
