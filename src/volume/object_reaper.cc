#include "volume/object_reaper.h"

namespace skerry::volume {

void ObjectReaper::MarkDirty(const std::string& object) {
  if (store_.capabilities().durable_writes) return;
  MutexLock lock(&mu_);
  dirty_.insert(object);
}

Status ObjectReaper::SyncDirty() {
  std::vector<std::string> objects;
  {
    MutexLock lock(&mu_);
    objects.assign(dirty_.begin(), dirty_.end());
    dirty_.clear();
  }
  if (objects.empty()) return Status::OK();
  Status st = store_.SyncBlocking(objects);
  if (!st.ok()) {
    MutexLock lock(&mu_);
    dirty_.insert(objects.begin(), objects.end());
  }
  return st;
}

void ObjectReaper::QueueDelete(uint64_t block, std::string object) {
  MutexLock lock(&mu_);
  deletes_[std::move(object)] = PendingDelete{block, ++delete_seq_};
}

void ObjectReaper::CancelDelete(const std::string& object) {
  MutexLock lock(&mu_);
  deletes_.erase(object);
}

ObjectReaper::Deletes ObjectReaper::PendingDeletes() const {
  MutexLock lock(&mu_);
  return deletes_;
}

Status ObjectReaper::DeleteCaptured(const Deletes& captured, const std::function<std::mutex&(uint64_t)>& block_lock) {
  for (const auto& [object, pending] : captured) {
    std::lock_guard block(block_lock(pending.block));
    {
      MutexLock lock(&mu_);
      auto it = deletes_.find(object);
      // Written anew (and maybe trimmed again) since it was captured: not ours to delete now.
      if (it == deletes_.end() || it->second.seq != pending.seq) continue;
      deletes_.erase(it);
    }
    objects_deleted_.fetch_add(1);
    Status st = store_.Delete(object);
    if (!st.ok() && !st.IsNotFound()) {
      QueueDelete(pending.block, object);  // still owed: the next flush tries again
      return st;
    }
  }
  return Status::OK();
}

}  // namespace skerry::volume
