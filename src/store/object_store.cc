// The blocking wrappers over the asynchronous data path of every ObjectStore.
//
// Each wrapper hands the store a completion that records the result in a waiter on the
// caller's stack and waits for it, so it works whether `done` runs inline before the
// call returns (the directory store, on every request: no allocation then, no
// std::promise with its call_once) or later on a store thread.
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

#include "skerry/object_store.h"

namespace skerry {
namespace {

// Runs `start(done)` and blocks until `done` is called; returns what it was given.
template <class T, class Start>
T Await(Start&& start) {
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<T> value;
  } w;
  // The completion holds only a pointer. It notifies while holding the mutex, and the
  // waiter can return (destroying `w`) only after taking the mutex, so `w` outlives every
  // use; the store may destroy its copy of `done` whenever it likes.
  start([&w](T value) {
    std::lock_guard lock(w.mu);
    w.value.emplace(std::move(value));
    w.cv.notify_one();
  });
  std::unique_lock lock(w.mu);
  w.cv.wait(lock, [&] { return w.value.has_value(); });
  return std::move(*w.value);
}

}  // namespace

Result<size_t> ObjectStore::ReadSync(const std::string& name, uint64_t offset, std::span<char> out) {
  return Await<Result<size_t>>([&](ReadDone done) { Read(name, offset, out, std::move(done)); });
}

Status ObjectStore::WriteSync(const std::string& name, uint64_t offset, std::span<const char> data,
                              bool fresh) {
  return Await<Status>([&](Done done) { Write(name, offset, data, fresh, std::move(done)); });
}

Status ObjectStore::ZeroSync(const std::string& name, uint64_t offset, uint64_t length) {
  return Await<Status>([&](Done done) { Zero(name, offset, length, std::move(done)); });
}

Status ObjectStore::CopySync(const std::string& src, const std::string& dst) {
  return Await<Status>([&](Done done) { Copy(src, dst, std::move(done)); });
}

Status ObjectStore::DeleteMany(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    Status st = Delete(name);
    if (!st.ok() && !st.IsNotFound()) return st;
  }
  return Status::OK();
}

Status ObjectStore::SyncSync(std::vector<std::string> names) {
  return Await<Status>([&](Done done) { Sync(std::move(names), std::move(done)); });
}

}  // namespace skerry
