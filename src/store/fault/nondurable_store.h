// NonDurableStore: a store decorator that simulates power loss (URI "nondurable:+INNER";
// docs/faults.md), after FoundationDB's non-durable file and leveldb's fault-injection Env.
//
// Write, Zero, Copy and Truncate are held in memory, per object, until a Sync of that
// object replays them onto INNER (and syncs INNER). Until then every read of this
// instance sees them over INNER, as the page cache would. Put, Create, CompareAndSwap
// and Delete are durable by contract: they go straight to INNER and discard the object's
// held changes (a replaced or deleted file takes its unsynced writes with it).
//
// Crash() is the power cut: every later call on this instance fails with IOError (so
// destructors that try to flush reach nothing), and the held changes are either dropped
// (kDrop) or, in kTear mode, a random subset of them reaches INNER: each held change is
// skipped, applied whole, or (a Write or Zero) applied up to a random 512-byte boundary,
// in the order they were made; a Copy or Truncate is all or nothing. The choice is drawn
// from a PRNG seeded by the caller, in the order objects were first changed, so a run
// that makes the same calls tears the same way. INNER, or a new NonDurableStore over it,
// is then the rebooted store.
//
// Memory: a changed object is held whole, plus every unsynced change to it. This is a
// test store; keep flushes coming.
//
// Thread-safety: all methods may be called concurrently; one mutex serializes every
// call (calls to INNER are made under it, `done` runs after it is released).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "skerry/object_store.h"

namespace skerry {

enum class CrashMode {
  kDrop,  // nothing unsynced survives
  kTear,  // a random part of what was unsynced survives
};

struct NonDurableOptions {
  // When set, the first call after this file appears crashes the store (as Crash(mode, seed)),
  // so a power cut can be pulled on a running daemon from outside.
  std::string crash_trigger;
  CrashMode mode = CrashMode::kDrop;
  uint64_t seed = 1;
};

// Parses "" or "crash=PATH&mode=drop|tear&seed=N". InvalidArgument naming the bad part.
Result<NonDurableOptions> ParseNonDurableOptions(std::string_view spec);

class NonDurableStore final : public ObjectStore {
 public:
  explicit NonDurableStore(std::shared_ptr<ObjectStore> inner, NonDurableOptions options = {},
                           std::string spec = "");

  // Simulates power loss now (see above). Idempotent: a second call does nothing.
  void Crash(CrashMode mode, uint64_t seed);
  bool crashed() const;
  // Objects with changes not yet synced to INNER.
  size_t unsynced_objects() const;

  // INNER's capabilities, but writes are not durable (callers must Sync) and the store
  // completes every call inline.
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
  Status CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) override;
  Status Truncate(const std::string& name, uint64_t size) override;
  Result<ObjectInfo> Stat(const std::string& name) override;
  Status Delete(const std::string& name) override;
  Result<std::vector<std::string>> List(std::string_view prefix) override;

  Status Lock(const std::string& name, const std::string& owner, int64_t lease_ms) override;
  Status Unlock(const std::string& name, const std::string& owner) override;
  Result<LockInfo> GetLock(const std::string& name) override;
  Status BreakLock(const std::string& name, const std::string& owner, bool fence) override;

 private:
  // One unsynced change, as it must be replayed onto INNER.
  struct Change {
    enum class Kind { kWrite, kZero, kCopy, kTruncate } kind;
    uint64_t offset = 0;  // kTruncate: the new size
    uint64_t length = 0;  // kZero
    bool fresh = false;   // kWrite
    std::shared_ptr<const std::string> data;  // kWrite: the bytes; kCopy: the source's content
  };
  // An object with unsynced changes: its content as this instance shows it, and the changes.
  struct Overlay {
    uint64_t seq = 0;  // when it was first changed; orders a tear
    std::string content;
    std::vector<Change> changes;
  };

  // REQUIRES: mu_ held. IOError once crashed; crashes first if the trigger file exists.
  Status Alive();
  // REQUIRES: mu_ held. The overlay of `name`, made from INNER's content if absent.
  // `must_exist`: NotFound when the object exists nowhere.
  Result<Overlay*> Materialize(const std::string& name, bool must_exist);
  // REQUIRES: mu_ held. The object's content as this instance shows it.
  Result<std::string> Visible(const std::string& name);
  // REQUIRES: mu_ held. Replays `c` onto INNER, only its first `limit` bytes for a Write or Zero.
  Status Apply(const std::string& name, const Change& c, uint64_t limit);
  void CrashLocked(CrashMode mode, uint64_t seed);  // REQUIRES: mu_ held

  const std::shared_ptr<ObjectStore> inner_;
  const NonDurableOptions options_;
  const std::string spec_;
  mutable std::mutex mu_;
  bool crashed_ = false;                    // GUARDED_BY(mu_)
  uint64_t next_seq_ = 0;                   // GUARDED_BY(mu_)
  std::map<std::string, Overlay> overlays_;  // GUARDED_BY(mu_)
};

}  // namespace skerry
