#include "volume/copy_up_queue.h"

#include <fmt/format.h>

#include <iterator>

namespace skerry::volume {

// ---------------------------------------------------------------- held writes, coalesced

void HeldWriteOverlay::Add(uint64_t off, std::string_view data) {
  if (data.empty()) return;
  const uint64_t end = off + data.size();
  auto it = pieces_.lower_bound(off);
  // A piece starting before `off` and reaching into it keeps its head, and its tail past
  // `end` if it reaches that far.
  if (it != pieces_.begin()) {
    auto prev = std::prev(it);
    uint64_t prev_end = prev->first + prev->second.size();
    if (prev_end > off) {
      if (prev_end > end) pieces_.emplace_hint(it, end, prev->second.substr(end - prev->first));
      prev->second = prev->second.substr(0, off - prev->first);
    }
  }
  // Pieces starting inside [off, end) go, but for a tail past `end`.
  while (it != pieces_.end() && it->first < end) {
    uint64_t piece_end = it->first + it->second.size();
    if (piece_end > end) pieces_.emplace_hint(std::next(it), end, it->second.substr(end - it->first));
    it = pieces_.erase(it);
  }
  pieces_.emplace(off, data);
}

std::vector<HeldExtent> HeldWriteOverlay::Extents() const {
  std::vector<HeldExtent> out;
  out.reserve(pieces_.size());
  for (const auto& [off, data] : pieces_) out.push_back(HeldExtent{off, data});
  return out;
}

// ---------------------------------------------------------------- the queue
//
// The held writes are applied in the order they were acknowledged, before any later write
// reaches the block directly: a writer holds the block lock, and the map names the new
// object only once nothing is held (both under mu_).

CopyUpQueue::CopyUpQueue(CopyUpHost& host, std::string volume_name, uint32_t block_size, int copier_threads,
                         std::shared_ptr<MemoryBudget> process_budget, uint64_t max_held_per_volume)
    : host_(host),
      volume_name_(std::move(volume_name)),
      block_size_(block_size),
      copier_threads_(copier_threads),
      process_budget_(std::move(process_budget)),
      max_held_per_volume_(max_held_per_volume) {}

bool CopyUpQueue::Has(uint64_t block) {
  MutexLock lock(&mu_);
  return copyups_.count(block) != 0;
}

CopyUpQueue::Hold CopyUpQueue::HoldIfPending(uint64_t block, uint64_t off, std::span<const char> data) {
  MutexLock lock(&mu_);
  auto it = copyups_.find(block);
  if (it == copyups_.end()) return Hold::kNoCopyUp;
  return AddHeldWrite(it->second, off, data) ? Hold::kHeld : Hold::kFull;
}

bool CopyUpQueue::AddHeldWrite(CopyUp& c, uint64_t off, std::span<const char> data) {
  if (c.held_bytes + data.size() > block_size_ || held_bytes_ + data.size() > max_held_per_volume_ ||
      (process_budget_ && !process_budget_->TryReserve(data.size())))
    return false;
  c.held.push_back(HeldWrite{off, std::string(data.begin(), data.end())});
  c.held_bytes += data.size();
  held_bytes_ += data.size();
  return true;
}

void CopyUpQueue::Forget(Map::iterator it) {
  held_bytes_ -= it->second.held_bytes;
  if (process_budget_) process_budget_->Release(it->second.held_bytes);
  copyups_.erase(it);
  pending_.fetch_sub(1);
  done_cv_.SignalAll();
}

bool CopyUpQueue::Start(uint64_t block, const Entry& source, std::string target, uint64_t off,
                        std::span<const char> data) {
  MutexLock lock(&mu_);
  CopyUp c;
  if (stop_ || !AddHeldWrite(c, off, data)) return false;
  c.job.block = block;
  c.job.source = source;
  c.job.target = std::move(target);
  c.seq = ++seq_;
  copyups_.emplace(block, std::move(c));
  pending_.fetch_add(1);
  if (copier_threads_ > 0) {
    StartCopiersLocked();
    queue_.push_back(block);
    copier_cv_.Signal();
  }
  return true;
}

Status CopyUpQueue::Run(uint64_t block) {
  CopyUpJob job;
  {
    MutexLock lock(&mu_);
    job = copyups_.at(block).job;
  }
  // Every attempt starts from a fresh copy and applies all held writes again (they are
  // idempotent in order), so a failure anywhere leaves nothing half done.
  Status st = host_.MayWrite(block);
  if (st.ok()) st = host_.CopyBlock(job);
  size_t applied = 0;
  for (;;) {
    HeldWriteOverlay batch;
    size_t batch_end = 0;
    {
      MutexLock lock(&mu_);
      auto it = copyups_.find(block);
      CopyUp& c = it->second;
      // Before each batch of held writes too, not only before the map change: a copy-up that
      // keeps taking writes for a while must not go on writing once the lease lapsed.
      if (st.ok()) st = host_.MayWrite(block);
      if (st.ok() && applied == c.held.size()) {
        // Nothing left to hold: from now on the map names the object and writes go there.
        st = host_.Land(job);
        if (st.ok()) {
          Forget(it);
          return Status::OK();
        }
      }
      if (!st.ok()) {
        c.state = CopyUp::State::kFailed;  // kept, with its held writes, for a retry
        done_cv_.SignalAll();
        return st.Prefixed(
            fmt::format("{}: deferred copy-up of block {} ({} held writes)", volume_name_, block, c.held.size()));
      }
      // The writes held since the last look, as the extents they leave (the deque's elements
      // stay put while writers append).
      for (size_t i = applied; i < c.held.size(); i++) batch.Add(c.held[i].off, c.held[i].data);
      batch_end = c.held.size();
    }
    st = host_.WriteHeld(job, batch.Extents());
    if (st.ok()) applied = batch_end;
  }
}

bool CopyUpQueue::Claim(uint64_t block) {
  MutexLock lock(&mu_);
  for (;;) {
    auto it = copyups_.find(block);
    if (it == copyups_.end()) return false;
    if (it->second.state == CopyUp::State::kRunning) {
      done_cv_.Wait(&mu_);
      continue;
    }
    it->second.state = CopyUp::State::kRunning;  // no copier, reader or flush touches it now
    return true;
  }
}

void CopyUpQueue::EndClaim(uint64_t block, bool replaced) {
  MutexLock lock(&mu_);
  auto it = copyups_.find(block);
  if (replaced) {
    // A copy an earlier failed attempt left behind was either overwritten by the new content
    // (the same object) or, after a trim, is named by nothing: at most an unreferenced leftover.
    Forget(it);
  } else {
    it->second.state = CopyUp::State::kFailed;
    done_cv_.SignalAll();
  }
}

Status CopyUpQueue::Finish(uint64_t block) {
  // Queued (no copier got to it yet) or failed before: do it here rather than wait.
  return Claim(block) ? Run(block) : Status::OK();
}

uint64_t CopyUpQueue::last_started() {
  MutexLock lock(&mu_);
  return seq_;
}

Status CopyUpQueue::FinishStartedUpTo(uint64_t seq) {
  for (;;) {
    uint64_t claim = UINT64_MAX;
    {
      MutexLock lock(&mu_);
      bool running = false;
      for (auto& [block, c] : copyups_) {
        if (c.seq > seq) continue;
        if (c.state == CopyUp::State::kRunning) {
          running = true;
        } else {
          c.state = CopyUp::State::kRunning;
          claim = block;
          break;
        }
      }
      if (claim == UINT64_MAX) {
        // A copier's failure turns its copy-up back to kFailed, which the loop then retries.
        if (!running) return Status::OK();
        done_cv_.Wait(&mu_);
        continue;
      }
    }
    SKERRY_RETURN_IF_ERROR(Run(claim));
  }
}

void CopyUpQueue::StartCopiersLocked() {
  if (copiers_.empty()) {
    for (int i = 0; i < copier_threads_; i++) copiers_.emplace_back([this] { CopierLoop(); });
  }
}

void CopyUpQueue::RunOnCopier(std::function<void()> task) {
  {
    MutexLock lock(&mu_);
    if (copier_threads_ > 0 && !stop_) {
      StartCopiersLocked();
      tasks_.push_back(std::move(task));
      copier_cv_.Signal();
      return;
    }
  }
  task();  // no copiers (on-demand mode, or stopping): here
}

int CopyUpQueue::RunQueued(int n) {
  int ran = 0;
  while (ran < n) {
    uint64_t block;
    {
      MutexLock lock(&mu_);
      auto it = copyups_.begin();
      while (it != copyups_.end() && it->second.state != CopyUp::State::kQueued) ++it;
      if (it == copyups_.end()) return ran;
      it->second.state = CopyUp::State::kRunning;
      block = it->first;
    }
    (void)Run(block);  // a failure stays with the copy-up, as on a copier
    ran++;
  }
  return ran;
}

void CopyUpQueue::CopierLoop() {
  mu_.Lock();
  for (;;) {
    while (!stop_ && queue_.empty() && tasks_.empty()) copier_cv_.Wait(&mu_);
    if (stop_) break;
    if (!tasks_.empty()) {  // first: a reader waits for each
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      mu_.Unlock();
      task();
      mu_.Lock();
      continue;
    }
    uint64_t block = queue_.front();
    queue_.pop_front();
    auto it = copyups_.find(block);
    if (it == copyups_.end() || it->second.state != CopyUp::State::kQueued) continue;  // done by a waiter
    it->second.state = CopyUp::State::kRunning;
    mu_.Unlock();
    // A failure stays with the copy-up: the next flush (or read, trim) retries and reports it.
    (void)Run(block);
    mu_.Lock();
  }
  mu_.Unlock();
}

void CopyUpQueue::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  copier_cv_.SignalAll();
  for (std::thread& t : copiers_) t.join();
  copiers_.clear();
  // Reads handed to the copiers hold the volume's gate, which Close holds exclusively before
  // it gets here: none should be left, but if one is, it runs (while the copy-ups it may need
  // exist).
  std::deque<std::function<void()>> tasks;
  {
    MutexLock lock(&mu_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
  // What is still held now is dropped; its bytes go back to the process.
  MutexLock lock(&mu_);
  if (process_budget_) process_budget_->Release(held_bytes_);
  held_bytes_ = 0;
  copyups_.clear();
  queue_.clear();
  pending_.store(0);
}

}  // namespace skerry::volume
