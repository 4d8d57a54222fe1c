// The blocking wrappers over the asynchronous data path of every ObjectStore.
//
// Each wrapper hands the store a completion and waits until it has run. Two ways, by the
// store's capabilities:
//  * a store that completes inline (native_async false: directory, memory) gets a
//    completion that writes into a waiter on the caller's stack: no allocation, no
//    std::promise with its call_once, on the directory store's every request;
//  * a natively asynchronous store (RADOS) completes on its own thread while the caller
//    sleeps. Its completion shares a heap waiter with the caller and wakes it after
//    releasing the mutex: woken while the completion still held it, the caller would
//    sleep once more on the mutex, two thread switches instead of one per call.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "skerry/object_store.h"

namespace skerry {
namespace {

template <class T>
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<T> value;

  T Wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return value.has_value(); });
    return std::move(*value);
  }
};

// Runs `start(done)` and blocks until `done` is called; returns what it was given.
template <class T, class Start>
T Await(const ObjectStore& store, Start&& start) {
  if (!store.capabilities().native_async) {
    // Correct even if `done` came later after all: it notifies while holding the mutex,
    // and the waiter returns (destroying `w`) only after taking it, so `w` outlives it.
    Waiter<T> w;
    start([&w](T value) {
      std::lock_guard lock(w.mu);
      w.value.emplace(std::move(value));
      w.cv.notify_one();
    });
    return w.Wait();
  }
  // Shared, so the completion may notify after unlocking even if the waiter has returned.
  auto w = std::make_shared<Waiter<T>>();
  start([w](T value) {
    {
      std::lock_guard lock(w->mu);
      w->value.emplace(std::move(value));
    }
    w->cv.notify_one();
  });
  return w->Wait();
}

}  // namespace

Result<size_t> ObjectStore::ReadBlocking(const std::string& name, uint64_t offset, std::span<char> out) {
  return Await<Result<size_t>>(*this, [&](ReadDone done) { Read(name, offset, out, std::move(done)); });
}

Status ObjectStore::WriteBlocking(const std::string& name, uint64_t offset, std::span<const char> data,
                                  bool fresh) {
  return Await<Status>(*this, [&](Done done) { Write(name, offset, data, fresh, std::move(done)); });
}

Status ObjectStore::ZeroBlocking(const std::string& name, uint64_t offset, uint64_t length) {
  return Await<Status>(*this, [&](Done done) { Zero(name, offset, length, std::move(done)); });
}

Status ObjectStore::CopyBlocking(const std::string& src, const std::string& dst) {
  return Await<Status>(*this, [&](Done done) { Copy(src, dst, std::move(done)); });
}

Status ObjectStore::ReadToPipe(const std::string& name, uint64_t, uint64_t, int) {
  return Status::NotSupported(uri() + " cannot splice " + name + " into a pipe");
}

Status ObjectStore::DeleteMany(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    Status st = Delete(name);
    if (!st.ok() && !st.IsNotFound()) return st;
  }
  return Status::OK();
}

Status ObjectStore::SyncBlocking(std::vector<std::string> names) {
  return Await<Status>(*this, [&](Done done) { Sync(std::move(names), std::move(done)); });
}

}  // namespace skerry
