// RadosStore: the "rados:" store, objects in a Ceph RADOS pool (librados).
//
//   rados:POOL[?conf=PATH&id=CLIENT&namespace=NS&data_pool=POOL2]
//
// Every skerry object is one RADOS object of the same name, in namespace NS (default: the
// pool's default namespace). Maps and metadata live in POOL; block data (`v.<id>.b.*`) and
// content-addressed blocks (`c.*`) live in POOL2 when data_pool is given (e.g. an erasure
// coded or differently replicated pool), else in POOL too. A block and its copies always
// share a pool, so Copy is an OSD-side copy_from.
//
// The data path is natively asynchronous: each call submits one librados aio operation and
// returns; `done` runs from librados's completion (its finisher thread), never on a thread of
// our own, and no thread is created per request. A `done` must therefore not block waiting
// for another operation of a RADOS store (that would wait on the thread that completes it).
//
// Durability: RADOS acknowledges a write once every replica of the pool (size) has it on
// stable storage, so every completed write is durable: Sync is a no-op and durable_writes
// is true. Put, Create and CompareAndSwap are single atomic OSD operations.
//
// Locks are RADOS exclusive locks (cls_lock, lock name "skerry", cookie = owner) with the
// lease as duration, plus a lease record (xattr "skerry.lease": "OWNER\nEXPIRES_UNIX_MS\n")
// that tells GetLock when the lease ends and who held an expired one, and the holder's
// client (xattr "skerry.lease.client"). BreakLock with fence blocklists the holder's client
// for an hour, as `rbd lock break` does: no OSD serves it any more, for any object. A store
// whose client was blocklisted fails every call from then on ("fenced"). docs/rados.md has
// the mapping of every call to RADOS operations.
//
// Thread-safety: every method may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "skerry/object_store.h"

namespace skerry {

struct RadosStoreOptions {
  std::string pool;       // maps and metadata (required)
  std::string data_pool;  // block data; empty = `pool`
  std::string conf;       // ceph.conf path; empty = Ceph's search ($CEPH_CONF, /etc/ceph/ceph.conf, ...)
  std::string id;         // client id ("admin" for client.admin); empty = admin
  std::string ns;         // RADOS namespace; empty = the default namespace
};

// Parses "rados:POOL[?key=value&...]" (keys: conf, id, namespace, data_pool).
Result<RadosStoreOptions> ParseRadosUri(std::string_view uri);
// The URI that ParseRadosUri turns back into `options`.
std::string FormatRadosUri(const RadosStoreOptions& options);

class RadosStore final : public ObjectStore {
 public:
  // Connects to the cluster and opens the pool(s). NotFound when a pool does not exist
  // (pools are made by the administrator, not by skerry); TimedOut when the monitors do
  // not answer within client_mount_timeout (30 s unless ceph.conf says otherwise).
  static Result<std::shared_ptr<RadosStore>> Open(const RadosStoreOptions& options);
  static Result<std::shared_ptr<RadosStore>> Open(std::string_view uri);

  ~RadosStore() override;

  // True for objects that go to the data pool: "c.*" and "v.<id>.b.*".
  static bool IsDataObject(std::string_view name);

  StoreCapabilities capabilities() const override;
  std::string uri() const override;

  void Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) override;
  void Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh,
             Done done) override;
  void Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) override;
  void Copy(const std::string& src, const std::string& dst, Done done) override;
  void Sync(std::vector<std::string> names, Done done) override;

  Result<std::string> Get(const std::string& name) override;
  Status Put(const std::string& name, std::string_view data) override;
  Status Create(const std::string& name, std::string_view data) override;
  Status CompareAndSwap(const std::string& name, std::string_view expected,
                        std::string_view desired) override;
  Status Truncate(const std::string& name, uint64_t size) override;
  Result<ObjectInfo> Stat(const std::string& name) override;
  Status Delete(const std::string& name) override;
  Status DeleteMany(const std::vector<std::string>& names) override;
  Result<std::vector<std::string>> List(std::string_view prefix) override;

  Status Lock(const std::string& name, const std::string& owner, int64_t lease_ms) override;
  Status Unlock(const std::string& name, const std::string& owner) override;
  Result<LockInfo> GetLock(const std::string& name) override;
  Status BreakLock(const std::string& name, const std::string& owner, bool fence) override;

  struct Impl;  // librados state; defined in rados_impl.h so includers need no Ceph headers

 private:
  explicit RadosStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace skerry
