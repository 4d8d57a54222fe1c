// ObjectStore: where skerry keeps its bytes.
//
// A store holds named objects: byte strings of any length up to a block, plus small
// metadata objects. Volumes, snapshots and clones are built above this interface
// (src/volume/) and never see how a store lays objects out. Implementations live in
// src/store/<name>/ (dir, mem; rados later); decorators (faults, delays) wrap another
// ObjectStore through this same interface.
//
// Object names: 1..200 characters from [A-Za-z0-9._-]. Callers validate them with
// IsValidObjectName(); stores may assume valid names.
//
// Objects are sparse: reading past the end of an object, or from a range never
// written, yields zeros. An object's size is the highest byte ever written + 1 (or
// what Truncate set).
//
// Two families of calls:
//  * the data path (Read, Write, Zero, Copy, Sync) is asynchronous: the call returns
//    at once and `done` runs later on a store-owned thread, or inline before the call
//    returns. No thread is created per request. Buffers passed in must stay valid
//    until `done` runs. Blocking wrappers (ReadBlocking, ...) are provided.
//  * the control path (Get, Put, Create, CompareAndSwap, Stat, Delete, List, locks)
//    is synchronous: it runs on management operations, never per guest I/O.
//
// Durability: a completed Write/Zero/Copy/Truncate is visible to every later reader
// but is only guaranteed on stable storage after a Sync of that object completes.
// Put, Create, CompareAndSwap and Delete are durable and atomic when they return.
//
// Thread-safety: every method may be called from any thread concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "skerry/done.h"
#include "skerry/status.h"

namespace skerry {

// What a store can do; the layers above choose their strategy from this.
struct StoreCapabilities {
  bool server_side_copy = false;  // Copy() does not move data through this process
  bool cheap_copy = false;        // Copy() shares extents (reflink): O(1) in data size
  bool native_async = false;      // data-path calls do not block the caller
  bool persistent = true;         // survives the process (false for mem:)
  bool durable_writes = false;    // every completed write is already durable (Sync is free)
  bool pipe_reads = false;        // ReadToPipe works: objects are files the kernel can splice
  bool fences_lock_holders = false;  // BreakLock(fence) cuts the old holder off the store
};

struct ObjectInfo {
  uint64_t size = 0;
};

// A lease-based lock on a name. Held until Unlock, or until the lease expires without
// renewal. Renew by calling Lock again with the same owner.
struct LockInfo {
  std::string owner;        // who holds it, e.g. "skerryd@host:pid"
  int64_t expires_unix_ms;  // when the lease lapses unless renewed
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  virtual StoreCapabilities capabilities() const = 0;
  // The URI that opens this store again, e.g. "dir:/srv/skerry".
  virtual std::string uri() const = 0;

  // ---- data path (asynchronous) ----

  // Reads up to out.size() bytes at `offset`. Bytes past the end of the object, and
  // unwritten ranges, read as zeros; `done` gets the number of bytes filled, which is
  // always out.size() when the object exists. NotFound when the object does not exist.
  virtual void Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) = 0;

  // Writes `data` at `offset`, creating the object if absent. With `fresh`, any previous
  // content of the object is discarded first (the object then holds zeros except `data`).
  virtual void Write(const std::string& name, uint64_t offset, std::span<const char> data,
                     bool fresh, Done done) = 0;

  // Makes [offset, offset+length) read as zeros, releasing space where the store can
  // (hole punching). The object must exist (NotFound otherwise).
  virtual void Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) = 0;

  // Copies object `src` to `dst`, replacing `dst`. Uses a reflink or an in-store copy
  // where the store can (see capabilities); holes in `src` stay holes where possible.
  virtual void Copy(const std::string& src, const std::string& dst, Done done) = 0;

  // Makes every completed Write/Zero/Copy/Truncate of `names` durable.
  virtual void Sync(std::vector<std::string> names, Done done) = 0;

  // Zero-copy read, synchronous (capabilities().pipe_reads; else NotSupported): puts
  // `length` bytes of `name` at `offset` into the pipe `pipe_fd` without copying them
  // through this process; bytes past the end of the object go in as zeros. A full pipe is
  // an error, Busy, never a wait; a pipe holds a number of page pieces, not of bytes, so a
  // range that starts or ends mid-page may not fit although its bytes would.
  // NotFound when the object does not exist (then nothing was put in the pipe); after
  // other errors part of the bytes may be in the pipe.
  virtual Status ReadToPipe(const std::string& name, uint64_t offset, uint64_t length, int pipe_fd);

  // ---- control path (synchronous) ----

  // Whole-object read. NotFound when absent.
  virtual Result<std::string> Get(const std::string& name) = 0;
  // Atomic, durable whole-object replace (readers see old or new content, never a mix).
  virtual Status Put(const std::string& name, std::string_view data) = 0;
  // Atomic, durable create-if-absent. AlreadyExists when the name is taken.
  virtual Status Create(const std::string& name, std::string_view data) = 0;
  // Atomic, durable replace only if the current content equals `expected`.
  // Conflict when it differs, NotFound when the object does not exist.
  virtual Status CompareAndSwap(const std::string& name, std::string_view expected,
                                std::string_view desired) = 0;
  // Sets the size of an object (creating it if absent); bytes past the old end read as zeros.
  virtual Status Truncate(const std::string& name, uint64_t size) = 0;
  virtual Result<ObjectInfo> Stat(const std::string& name) = 0;
  // Durable delete. NotFound when absent.
  virtual Status Delete(const std::string& name) = 0;
  // Deletes every named object; absent ones are fine. Durable when it returns, but not
  // atomic as a whole: after a crash any subset may remain (callers use it only for objects
  // nothing references any more). Stores batch it (one directory sync per shard, requests
  // in flight together); the default deletes one by one, so decorators see each Delete.
  virtual Status DeleteMany(const std::vector<std::string>& names);
  // Names starting with `prefix`, sorted.
  virtual Result<std::vector<std::string>> List(std::string_view prefix) = 0;

  // Takes or renews a lease lock named `name` for `owner`. Busy (naming the holder) when
  // another owner holds an unexpired lease. An expired lease may be taken over.
  // The default builds the lock on Create/CompareAndSwap of an object `name`.
  virtual Status Lock(const std::string& name, const std::string& owner, int64_t lease_ms);
  // Releases the lock if `owner` holds it. NotFound if nobody holds it; Busy if another does.
  virtual Status Unlock(const std::string& name, const std::string& owner);
  // The current holder, NotFound if unlocked (an expired lease reads as its last holder).
  virtual Result<LockInfo> GetLock(const std::string& name);
  // Releases the lock if and only if `owner` holds it, its lease expired or not: for a
  // caller who knows `owner` is dead (a restarted daemon), or an operator. NotFound if
  // nobody holds it (or another owner's lease has lapsed); Busy, naming the holder, if
  // another owner does. With `fence`, a store that can (capabilities().fences_lock_holders)
  // first makes sure the old holder can no longer change anything in this store, in case
  // it is alive after all; other stores only break the lock. The default builds on Get and
  // CompareAndSwap of the lock object, like Lock.
  virtual Status BreakLock(const std::string& name, const std::string& owner, bool fence);

  // ---- blocking wrappers over the data path ----
  // Each XBlocking is X with the caller waiting for `done`. (Sync, in these names, only
  // ever means durability: SyncBlocking is the blocking Sync.)
  Result<size_t> ReadBlocking(const std::string& name, uint64_t offset, std::span<char> out);
  Status WriteBlocking(const std::string& name, uint64_t offset, std::span<const char> data,
                       bool fresh = false);
  Status ZeroBlocking(const std::string& name, uint64_t offset, uint64_t length);
  Status CopyBlocking(const std::string& src, const std::string& dst);
  Status SyncBlocking(std::vector<std::string> names);
};

bool IsValidObjectName(std::string_view name);

// Opens a store from a URI:
//   dir:PATH   objects as files under PATH (created if missing)
//   mem:       in-process, for tests (each call makes a new empty store)
// InvalidArgument for an unknown scheme, with the list of known ones.
Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri);

}  // namespace skerry
