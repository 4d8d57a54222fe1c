// RadosStore's internals, shared by rados_store.cc (open, data path, control path) and
// rados_lock.cc (locks and fencing). It includes librados.hpp, so only those two files may
// include it: they alone are compiled against the Ceph headers (src/store/CMakeLists.txt).
#pragma once

#include <rados/librados.hpp>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>

#include "store/rados/rados_store.h"

namespace skerry {
namespace rados_detail {

librados::bufferlist ToBl(std::string_view data);
std::string FromBl(librados::bufferlist& bl);
// A negative librados return value as a Status. `what` names the call and object.
// EBLOCKLISTED (ESHUTDOWN) says this client was fenced.
Status RadosError(int r, const std::string& what);
std::string Quote(const std::string& name);
Status InvalidName(const std::string& name);

// One asynchronous operation in flight: what it reads into, and what to do when it ends.
struct AioOp {
  RadosStore::Impl* impl = nullptr;
  librados::AioCompletion* completion = nullptr;
  librados::bufferlist bl;       // data written, or read into
  uint64_t size = 0;             // aio_stat result
  time_t mtime = 0;
  librados::ObjectWriteOperation write_op;
  std::function<void(int r, AioOp& op)> finish;
};

void OnAioComplete(librados::completion_t, void* arg);

}  // namespace rados_detail

struct RadosStore::Impl {
  RadosStoreOptions options;
  librados::Rados rados;
  bool connected = false;
  librados::IoCtx meta;  // maps and metadata
  librados::IoCtx data;  // block data, when a data pool is given
  bool split = false;

  // Set by the first EBLOCKLISTED an OSD answers: another skerry fenced this client
  // (BreakLock). From then on every call fails here without being sent, also after the
  // blocklist expires: this client's view of the volumes it wrote is stale for good.
  std::atomic<bool> fenced{false};

  std::mutex mu;
  std::condition_variable idle;
  int64_t in_flight = 0;  // GUARDED_BY(mu): aio operations whose callback has not finished

  ~Impl();

  librados::IoCtx& For(std::string_view name) { return split && IsDataObject(name) ? data : meta; }

  // Runs a synchronous librados call `f` (returning 0 or -errno) unless this client was
  // fenced, and notes a fencing it reports.
  template <class F>
  int Call(F&& f) {
    if (fenced.load()) return -ESHUTDOWN;
    return Note(f());
  }
  int Note(int r) {
    if (r == -ESHUTDOWN) fenced.store(true);
    return r;
  }

  // Submits one aio operation: `submit(completion)` hands it to librados. The op's `finish`
  // runs from the completion callback, or inline if submission itself fails.
  void Start(std::unique_ptr<rados_detail::AioOp> op,
             const std::function<int(librados::AioCompletion*, rados_detail::AioOp&)>& submit);
  void EndOp();

  // Runs a compound operation and waits; returns librados's result and the object version.
  template <class Op>
  int Operate(librados::IoCtx& io, const std::string& oid, Op* op, uint64_t* version = nullptr) {
    if (fenced.load()) return -ESHUTDOWN;
    librados::AioCompletion* c = librados::Rados::aio_create_completion();
    int r;
    if constexpr (std::is_same_v<Op, librados::ObjectReadOperation>) {
      r = io.aio_operate(oid, c, op, nullptr);
    } else {
      r = io.aio_operate(oid, c, op);
    }
    if (r == 0) {
      c->wait_for_complete();
      r = c->get_return_value();
      if (version) *version = c->get_version64();
    }
    c->release();
    return Note(r);
  }
};

}  // namespace skerry
