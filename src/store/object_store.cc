// The blocking wrappers over the asynchronous data path of every ObjectStore.
//
// Each wrapper hands the store a completion that fulfils a promise and waits on its
// future, so it works whether `done` runs inline before the call returns or later on
// a store thread. The promise is shared with the completion because the store may
// destroy its copy of `done` only after the waiter has already woken and returned.
#include <future>
#include <memory>
#include <utility>

#include "skerry/object_store.h"

namespace skerry {
namespace {

// Runs `start(done)` and blocks until `done` is called; returns what it was given.
template <class T, class Start>
T Await(Start&& start) {
  auto promise = std::make_shared<std::promise<T>>();
  std::future<T> future = promise->get_future();
  start([promise](T value) { promise->set_value(std::move(value)); });
  return future.get();
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
