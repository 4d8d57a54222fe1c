#include "store/dir/fd_cache.h"

#include <cerrno>

namespace skerry::dirstore {

FdCache::FdCache(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

Result<FdCache::FileRef> FdCache::Get(const std::string& name, const Opener& open) {
  const size_t stripe = StripeOf(name);
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(name);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    generation = generation_[stripe];
  }

  Result<UniqueFd> fd = open();
  if (!fd.ok() && fd.status().sys_errno() == EMFILE) {
    DropOldestHalf();
    fd = open();
  }
  if (!fd.ok()) return fd.status();
  auto file = std::make_shared<const File>(std::move(fd).value());

  FileRef evicted;  // closed after the mutex is released
  std::lock_guard<std::mutex> lock(mu_);
  if (generation_[stripe] != generation) return FileRef(file);  // maybe stale: do not keep
  auto it = index_.find(name);
  if (it != index_.end()) {  // another thread opened it meanwhile: share theirs
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  lru_.emplace_front(name, file);
  index_.emplace(name, lru_.begin());
  if (lru_.size() > capacity_) {
    evicted = std::move(lru_.back().second);
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return FileRef(file);
}

FdCache::FileRef FdCache::Peek(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second->second;
}

void FdCache::Invalidate(const std::string& name) {
  FileRef dropped;  // closed after the mutex is released
  std::lock_guard<std::mutex> lock(mu_);
  generation_[StripeOf(name)]++;
  auto it = index_.find(name);
  if (it == index_.end()) return;
  dropped = std::move(it->second->second);
  lru_.erase(it->second);
  index_.erase(it);
}

void FdCache::Clear() {
  std::list<Entry> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t& g : generation_) g++;
  dropped.swap(lru_);
  index_.clear();
}

size_t FdCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

void FdCache::DropOldestHalf() {
  std::list<Entry> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  size_t keep = lru_.size() / 2;
  auto first_dropped = std::next(lru_.begin(), static_cast<std::ptrdiff_t>(keep));
  for (auto it = first_dropped; it != lru_.end(); ++it) index_.erase(it->first);
  dropped.splice(dropped.begin(), lru_, first_dropped, lru_.end());
}

}  // namespace skerry::dirstore
