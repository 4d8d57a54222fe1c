#include "store/fault/nondurable_store.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>

#include "store/fault/store_ops.h"

namespace skerry {
namespace {

// Held objects are whole strings: refuse absurd offsets instead of allocating them.
constexpr uint64_t kMaxObjectSize = 1ull << 30;
// A torn write stops at a sector boundary, as a disk writes whole sectors.
constexpr uint64_t kSector = 512;

Status CheckName(const std::string& name) {
  if (IsValidObjectName(name)) return Status::OK();
  return Status::InvalidArgument("invalid object name '" + name + "'");
}

Status CheckEnd(uint64_t offset, uint64_t length) {
  if (length > kMaxObjectSize || offset > kMaxObjectSize - length)
    return Status::InvalidArgument("nondurable store objects are limited to 1 GiB");
  return Status::OK();
}

// Replaces `name` in `store` by `content`, writing only its non-zero 4 KiB pieces so a
// sparse store keeps the holes.
Status WriteContent(ObjectStore& store, const std::string& name, const std::string& content) {
  SKERRY_RETURN_IF_ERROR(store.WriteBlocking(name, 0, {}, /*fresh=*/true));
  constexpr size_t kPiece = 4096;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = std::min(content.size(), start + kPiece);
    bool zero = std::all_of(content.begin() + start, content.begin() + end, [](char c) { return c == 0; });
    if (!zero) {
      size_t run_end = end;  // extend the run over following non-zero pieces
      while (run_end < content.size()) {
        size_t next = std::min(content.size(), run_end + kPiece);
        if (std::all_of(content.begin() + run_end, content.begin() + next, [](char c) { return c == 0; })) break;
        run_end = next;
      }
      SKERRY_RETURN_IF_ERROR(store.WriteBlocking(name, start, std::span<const char>(content.data() + start, run_end - start)));
      end = run_end;
    }
    start = end;
  }
  return store.Truncate(name, content.size());
}

}  // namespace

Result<NonDurableOptions> ParseNonDurableOptions(std::string_view spec) {
  NonDurableOptions o;
  auto bad = [&](const Status& st) {
    return Status::InvalidArgument("nondurable '" + std::string(spec) + "': " + st.message());
  };
  SKERRY_ASSIGN_OR_RETURN(auto opts, SplitOptions(spec, "nondurable '" + std::string(spec) + "'"));
  for (auto& [key, value] : opts) {
    if (key == "crash") {
      if (value.empty()) return bad(Status::InvalidArgument("crash= needs a file path"));
      o.crash_trigger = value;
    } else if (key == "mode") {
      if (value == "drop") o.mode = CrashMode::kDrop;
      else if (value == "tear") o.mode = CrashMode::kTear;
      else return bad(Status::InvalidArgument("unknown mode '" + value + "' (use drop or tear)"));
    } else if (key == "seed") {
      auto v = ParseUnsignedOption(key, value);
      if (!v.ok()) return bad(v.status());
      o.seed = *v;
    } else {
      return bad(Status::InvalidArgument("unknown key '" + key + "' (use crash, mode, seed)"));
    }
  }
  return o;
}

NonDurableStore::NonDurableStore(std::shared_ptr<ObjectStore> inner, NonDurableOptions options, std::string spec)
    : inner_(std::move(inner)), options_(std::move(options)), spec_(std::move(spec)) {}

StoreCapabilities NonDurableStore::capabilities() const {
  StoreCapabilities caps = inner_->capabilities();
  caps.durable_writes = false;
  caps.native_async = false;
  caps.cheap_copy = false;  // a held copy duplicates the bytes
  caps.pipe_reads = false;  // unsynced writes live in this process, not in the files
  return caps;
}

std::string NonDurableStore::uri() const { return "nondurable:" + spec_ + "+" + inner_->uri(); }

bool NonDurableStore::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

size_t NonDurableStore::unsynced_objects() const {
  std::lock_guard lock(mu_);
  return overlays_.size();
}

void NonDurableStore::Crash(CrashMode mode, uint64_t seed) {
  std::lock_guard lock(mu_);
  CrashLocked(mode, seed);
}

void NonDurableStore::CrashLocked(CrashMode mode, uint64_t seed) {
  if (crashed_) return;
  crashed_ = true;
  if (mode == CrashMode::kTear) {
    std::vector<std::pair<uint64_t, const std::string*>> order;
    for (auto& [name, o] : overlays_) order.push_back({o.seq, &name});
    std::sort(order.begin(), order.end());
    std::mt19937_64 rng(seed);
    std::vector<std::string> touched;
    for (auto& [seq, name] : order) {
      for (const Change& c : overlays_[*name].changes) {
        uint64_t pick = rng() % 3;  // 0: lost, 1: whole, 2: a prefix
        if (pick == 0) continue;
        uint64_t limit = UINT64_MAX;
        uint64_t len = c.kind == Change::Kind::kWrite ? c.data->size() : c.kind == Change::Kind::kZero ? c.length : 0;
        if (pick == 2 && len > 0) {
          // Cut at offset itself or at a sector boundary inside the range.
          uint64_t first = (c.offset / kSector + 1) * kSector;
          uint64_t inside = first < c.offset + len ? (c.offset + len - 1 - first) / kSector + 1 : 0;
          uint64_t k = rng() % (inside + 1);
          limit = k == 0 ? 0 : first + (k - 1) * kSector - c.offset;
        }
        // What reaches the disk now cannot be reported to anyone: errors are ignored.
        (void)Apply(*name, c, limit);
      }
      touched.push_back(*name);
    }
    if (!touched.empty()) (void)inner_->SyncBlocking(touched);
  }
  overlays_.clear();
}

Status NonDurableStore::Alive() {
  if (!crashed_ && !options_.crash_trigger.empty() && access(options_.crash_trigger.c_str(), F_OK) == 0)
    CrashLocked(options_.mode, options_.seed);
  if (crashed_) return Status::IOError("nondurable store: crashed (simulated power loss)");
  return Status::OK();
}

Result<NonDurableStore::Overlay*> NonDurableStore::Materialize(const std::string& name, bool must_exist) {
  auto it = overlays_.find(name);
  if (it != overlays_.end()) return &it->second;
  Overlay o;
  o.seq = next_seq_++;
  Result<std::string> base = inner_->Get(name);
  if (base.ok()) {
    o.content = std::move(*base);
  } else if (!base.status().IsNotFound() || must_exist) {
    return base.status();
  }
  return &overlays_.emplace(name, std::move(o)).first->second;
}

Result<std::string> NonDurableStore::Visible(const std::string& name) {
  auto it = overlays_.find(name);
  if (it != overlays_.end()) return it->second.content;
  return inner_->Get(name);
}

Status NonDurableStore::Apply(const std::string& name, const Change& c, uint64_t limit) {
  switch (c.kind) {
    case Change::Kind::kWrite: {
      uint64_t n = std::min<uint64_t>(limit, c.data->size());
      if (n == 0 && !c.fresh && !c.data->empty()) return Status::OK();  // nothing of it arrived
      return inner_->WriteBlocking(name, c.offset, std::span<const char>(c.data->data(), n), c.fresh);
    }
    case Change::Kind::kZero: {
      uint64_t n = std::min(limit, c.length);
      if (n == 0 && c.length > 0) return Status::OK();
      Status st = inner_->ZeroBlocking(name, c.offset, n);
      return st.IsNotFound() ? Status::OK() : st;  // its creation did not arrive either
    }
    case Change::Kind::kCopy:
      return WriteContent(*inner_, name, *c.data);
    case Change::Kind::kTruncate:
      return inner_->Truncate(name, c.offset);
  }
  return Status::OK();
}

// ---- data path: held in memory ----

void NonDurableStore::Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) {
  Result<size_t> result = Status::OK();
  {
    std::lock_guard lock(mu_);
    Status st = CheckName(name);
    if (st.ok()) st = Alive();
    if (!st.ok()) {
      result = st;
    } else if (auto it = overlays_.find(name); it != overlays_.end()) {
      const std::string& bytes = it->second.content;
      size_t have = offset < bytes.size() ? std::min<uint64_t>(bytes.size() - offset, out.size()) : 0;
      if (have > 0) std::memcpy(out.data(), bytes.data() + offset, have);
      std::memset(out.data() + have, 0, out.size() - have);
      result = out.size();
    } else {
      result = inner_->ReadBlocking(name, offset, out);
    }
  }
  done(std::move(result));
}

void NonDurableStore::Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh,
                            Done done) {
  Status st;
  {
    std::lock_guard lock(mu_);
    st = CheckName(name);
    if (st.ok()) st = CheckEnd(offset, data.size());
    if (st.ok()) st = Alive();
    Result<Overlay*> o = st.ok() ? Materialize(name, false) : Result<Overlay*>(st);
    if (st.ok() && !o.ok()) st = o.status();
    if (st.ok()) {
      std::string& bytes = (*o)->content;
      if (fresh) bytes.clear();
      if (!data.empty()) {
        if (bytes.size() < offset + data.size()) bytes.resize(offset + data.size(), '\0');
        std::memcpy(bytes.data() + offset, data.data(), data.size());
      }
      Change c{Change::Kind::kWrite, offset, 0, fresh, std::make_shared<const std::string>(data.data(), data.size())};
      (*o)->changes.push_back(std::move(c));
    }
  }
  done(st);
}

void NonDurableStore::Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) {
  Status st;
  {
    std::lock_guard lock(mu_);
    st = CheckName(name);
    if (st.ok()) st = CheckEnd(offset, length);
    if (st.ok()) st = Alive();
    Result<Overlay*> o = st.ok() ? Materialize(name, true) : Result<Overlay*>(st);
    if (st.ok() && !o.ok()) st = o.status();
    if (st.ok()) {
      std::string& bytes = (*o)->content;
      uint64_t end = offset + length;
      if (offset < bytes.size())
        std::fill(bytes.begin() + offset, bytes.begin() + std::min<uint64_t>(end, bytes.size()), '\0');
      if (length > 0 && bytes.size() < end) bytes.resize(end, '\0');
      (*o)->changes.push_back(Change{Change::Kind::kZero, offset, length, false, nullptr});
    }
  }
  done(st);
}

void NonDurableStore::Copy(const std::string& src, const std::string& dst, Done done) {
  Status st;
  {
    std::lock_guard lock(mu_);
    st = CheckName(src);
    if (st.ok()) st = CheckName(dst);
    if (st.ok()) st = Alive();
    Result<std::string> content = st.ok() ? Visible(src) : Result<std::string>(st);
    if (st.ok() && !content.ok()) st = content.status();
    if (st.ok() && src != dst) {
      auto it = overlays_.find(dst);
      if (it == overlays_.end()) {
        Overlay o;
        o.seq = next_seq_++;
        it = overlays_.emplace(dst, std::move(o)).first;  // replaced whole: no need to read INNER
      }
      auto shared = std::make_shared<const std::string>(std::move(*content));
      it->second.content = *shared;
      it->second.changes.push_back(Change{Change::Kind::kCopy, 0, 0, false, std::move(shared)});
    }
  }
  done(st);
}

void NonDurableStore::Sync(std::vector<std::string> names, Done done) {
  Status st;
  {
    std::lock_guard lock(mu_);
    for (const std::string& n : names) {
      st = CheckName(n);
      if (!st.ok()) break;
    }
    if (st.ok()) st = Alive();
    std::vector<std::string> replayed;
    std::set<std::string> seen;
    for (size_t i = 0; st.ok() && i < names.size(); i++) {
      auto it = overlays_.find(names[i]);
      if (it == overlays_.end() || !seen.insert(names[i]).second) continue;
      for (const Change& c : it->second.changes) {
        st = Apply(names[i], c, UINT64_MAX);
        if (!st.ok()) break;
      }
      replayed.push_back(names[i]);
    }
    if (st.ok()) st = inner_->SyncBlocking(names);
    // On failure everything stays held: replaying again later gives the same content.
    if (st.ok())
      for (const std::string& n : replayed) overlays_.erase(n);
  }
  done(st);
}

// ---- control path: durable, straight to INNER ----

Result<std::string> NonDurableStore::Get(const std::string& name) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(Alive());
  return Visible(name);
}

Status NonDurableStore::Put(const std::string& name, std::string_view data) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(Alive());
  Status st = inner_->Put(name, data);
  if (st.ok()) overlays_.erase(name);  // the replaced object's unsynced changes die with it
  return st;
}

Status NonDurableStore::Create(const std::string& name, std::string_view data) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(Alive());
  if (overlays_.count(name)) return Status::AlreadyExists("object '" + name + "'");
  return inner_->Create(name, data);
}

Status NonDurableStore::CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(Alive());
  auto it = overlays_.find(name);
  if (it == overlays_.end()) return inner_->CompareAndSwap(name, expected, desired);
  if (it->second.content != expected) return Status::Conflict("object '" + name + "' changed");
  Status st = inner_->Put(name, desired);
  if (st.ok()) overlays_.erase(it);
  return st;
}

Status NonDurableStore::Truncate(const std::string& name, uint64_t size) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(CheckEnd(0, size));
  SKERRY_RETURN_IF_ERROR(Alive());
  SKERRY_ASSIGN_OR_RETURN(Overlay * o, Materialize(name, false));
  o->content.resize(size, '\0');
  o->changes.push_back(Change{Change::Kind::kTruncate, size, 0, false, nullptr});
  return Status::OK();
}

Result<ObjectInfo> NonDurableStore::Stat(const std::string& name) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(Alive());
  auto it = overlays_.find(name);
  if (it != overlays_.end()) return ObjectInfo{it->second.content.size()};
  return inner_->Stat(name);
}

Status NonDurableStore::Delete(const std::string& name) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(CheckName(name));
  SKERRY_RETURN_IF_ERROR(Alive());
  bool held = overlays_.count(name) > 0;
  Status st = inner_->Delete(name);
  // An object only this instance has seen (never synced) exists too: deleting it is OK.
  if (st.ok() || (held && st.IsNotFound())) {
    overlays_.erase(name);
    return Status::OK();
  }
  return st;
}

Result<std::vector<std::string>> NonDurableStore::List(std::string_view prefix) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(Alive());
  SKERRY_ASSIGN_OR_RETURN(std::vector<std::string> names, inner_->List(prefix));
  size_t had = names.size();
  for (auto it = overlays_.lower_bound(std::string(prefix)); it != overlays_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    names.push_back(it->first);
  }
  if (names.size() != had) {
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
  }
  return names;
}

Status NonDurableStore::Lock(const std::string& name, const std::string& owner, int64_t lease_ms) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(Alive());
  return inner_->Lock(name, owner, lease_ms);
}

Status NonDurableStore::Unlock(const std::string& name, const std::string& owner) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(Alive());
  return inner_->Unlock(name, owner);
}

Result<LockInfo> NonDurableStore::GetLock(const std::string& name) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(Alive());
  return inner_->GetLock(name);
}

Status NonDurableStore::BreakLock(const std::string& name, const std::string& owner, bool fence) {
  std::lock_guard lock(mu_);
  SKERRY_RETURN_IF_ERROR(Alive());
  return inner_->BreakLock(name, owner, fence);
}

}  // namespace skerry
