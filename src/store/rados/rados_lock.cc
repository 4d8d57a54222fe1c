// RadosStore's locks (docs/rados.md, "Locks"): a RADOS exclusive lock (cls_lock "skerry",
// cookie = owner, duration = lease) on the lock object decides who holds it; a lease record
// in xattrs beside it says until when, and who held a lapsed lease. BreakLock fences the
// old holder by blocklisting its client, as `rbd lock break` does.
#include <sys/time.h>

#include <charconv>
#include <chrono>
#include <list>
#include <optional>
#include <string>

#include "store/rados/rados_impl.h"
#include "store/rados/rados_store.h"

namespace skerry {

using namespace rados_detail;

namespace {

// Name of the RADOS (cls_lock) lock taken on a lock object, and of the lease record xattr.
constexpr char kLockName[] = "skerry";
constexpr char kLeaseAttr[] = "skerry.lease";
// The holder's client as RADOS knows it, "CLIENT ADDRESS" ("client.4123 127.0.0.1:0/1234"):
// what BreakLock fences once RADOS has dropped a lapsed lock and list_lockers no longer
// names anyone. Written and emptied together with the lease record.
constexpr char kClientAttr[] = "skerry.lease.client";
// How often Lock and BreakLock look again when a lease lapses, is broken or is taken while
// they look at it.
constexpr int kLockAttempts = 8;
// How long a fenced client stays blocklisted: long enough for a holder that was alive after
// all to see its renewals fail and stop. Its RadosStore refuses every call from its first
// EBLOCKLISTED on (Impl::fenced), so the hour ending does not let it write again.
constexpr uint32_t kFenceSeconds = 3600;

int64_t NowUnixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// ---- lease records: "OWNER\nEXPIRES_UNIX_MS\n" in xattr skerry.lease; empty = released

std::string EncodeLease(const std::string& owner, int64_t expires_unix_ms) {
  return owner + "\n" + std::to_string(expires_unix_ms) + "\n";
}

std::optional<LockInfo> DecodeLease(std::string_view text) {
  size_t nl = text.find('\n');
  if (text.empty() || nl == 0 || nl == std::string_view::npos || text.back() != '\n') return std::nullopt;
  std::string_view num = text.substr(nl + 1, text.size() - nl - 2);
  int64_t expires = 0;
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), expires);
  if (num.empty() || ec != std::errc() || end != num.data() + num.size()) return std::nullopt;
  return LockInfo{std::string(text.substr(0, nl)), expires};
}

std::string HeldBy(const std::string& name, const std::string& owner, std::optional<int64_t> remaining_ms) {
  std::string msg = "lock '" + name + "' is held by '" + owner + "'";
  if (remaining_ms) msg += " for another " + std::to_string(*remaining_ms) + " ms";
  return msg;
}

// Busy naming `holder`, with its remaining lease when the record is its.
Status HeldByStatus(const std::string& name, const std::string& holder, const std::optional<LockInfo>& lease) {
  std::optional<int64_t> remaining;
  if (lease && lease->owner == holder) remaining = lease->expires_unix_ms - NowUnixMs();
  return Status::Busy(HeldBy(name, holder, remaining));
}

// The live holder of the RADOS lock on `name`: nullopt when nobody holds it (or the lease
// has lapsed); NotFound when the object does not exist.
struct Holder {
  std::string client;   // "client.4123"
  std::string cookie;   // the skerry owner
  std::string address;  // the client instance's address, what a blocklist names
};

Result<std::optional<Holder>> LiveHolder(RadosStore::Impl& impl, const std::string& name) {
  int exclusive = 0;
  std::string tag;
  std::list<librados::locker_t> lockers;
  int r = impl.Call([&] { return impl.meta.list_lockers(name, kLockName, &exclusive, &tag, &lockers); });
  if (r < 0) return RadosError(r, "rados list_lockers " + Quote(name));
  if (lockers.empty()) return std::optional<Holder>();
  const librados::locker_t& l = lockers.front();
  return std::optional<Holder>(Holder{l.client, l.cookie, l.address});
}

// An xattr of the lock object ("" when it has none).
Result<std::string> Xattr(RadosStore::Impl& impl, const std::string& name, const char* attr) {
  librados::bufferlist bl;
  int r = impl.Call([&] { return impl.meta.getxattr(name, attr, bl); });
  if (r == -ENODATA) return std::string();
  if (r < 0) return RadosError(r, "rados getxattr " + Quote(name));
  return FromBl(bl);
}

// This client as list_lockers names it.
std::string SelfName(RadosStore::Impl& impl) { return "client." + std::to_string(impl.rados.get_instance_id()); }

// Empties the lease record if it still reads `record`; -ECANCELED when it changed.
int ClearRecord(RadosStore::Impl& impl, const std::string& name, const std::string& record) {
  librados::ObjectWriteOperation op;
  op.cmpxattr(kLeaseAttr, LIBRADOS_CMPXATTR_OP_EQ, ToBl(record));
  op.setxattr(kLeaseAttr, librados::bufferlist());
  op.setxattr(kClientAttr, librados::bufferlist());
  return impl.Operate(impl.meta, name, &op);
}

// Blocklists `client` at `address` for kFenceSeconds: no OSD serves it any more. Never this
// client itself: a caller breaking a lock held through its own store must not cut itself off.
Status Fence(RadosStore::Impl& impl, const std::string& name, const std::string& client,
             const std::string& address) {
  if (client == SelfName(impl)) return Status::OK();
  // Returns once this client has the OSD map with the entry. Every later operation from here
  // carries that map's epoch and an OSD applies the map before serving it: once this store
  // has touched an object, the old holder can no longer touch it.
  int r = impl.Call([&] { return impl.rados.blocklist_add(address, kFenceSeconds); });
  std::string what = "rados blocklist_add " + address + " (fencing " + client + ", holder of lock " + Quote(name) + ")";
  if (r == -EACCES || r == -EPERM) {
    return Status::IOError(what + ": not permitted; fencing needs the monitor capability to blocklist "
                                  "(mon 'profile rbd', or allow command \"osd blocklist\")",
                           -r);
  }
  return r < 0 ? RadosError(r, what) : Status::OK();
}

}  // namespace

Status RadosStore::Lock(const std::string& name, const std::string& owner, int64_t lease_ms) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  if (owner.empty() || owner.find('\n') != std::string::npos) {
    return Status::InvalidArgument("lock owner must be non-empty and one line");
  }
  if (lease_ms <= 0) return Status::InvalidArgument("lock lease must be positive");
  librados::IoCtx& io = impl_->meta;
  for (int attempt = 0; attempt < kLockAttempts; attempt++) {
    int64_t now = NowUnixMs();
    timeval duration{static_cast<time_t>(lease_ms / 1000), static_cast<suseconds_t>((lease_ms % 1000) * 1000)};
    // Takes the lock, or renews it when this client already holds it with this cookie.
    // The lease runs on the OSD's clock from when it handles the call.
    int r = impl_->Call([&] {
      return io.lock_exclusive(name, kLockName, owner, "skerry lease", &duration, LIBRADOS_LOCK_FLAG_MAY_RENEW);
    });
    if (r == 0) {
      // Ours: record owner and end of lease for GetLock (never later than the OSD's), and
      // this client, for BreakLock to fence once the lease has lapsed.
      librados::ObjectWriteOperation op;
      op.setxattr(kLeaseAttr, ToBl(EncodeLease(owner, now + lease_ms)));
      op.setxattr(kClientAttr, ToBl(SelfName(*impl_) + " " + impl_->rados.get_addrs()));
      r = impl_->Operate(io, name, &op);
      if (r < 0) {  // not reported as ours: do not keep holding it either (best effort)
        impl_->Call([&] { return io.unlock(name, kLockName, owner); });
        return RadosError(r, "rados setxattr " + Quote(name));
      }
      return Status::OK();
    }
    if (r != -EBUSY) return RadosError(r, "rados lock_exclusive " + Quote(name));
    SKERRY_ASSIGN_OR_RETURN(std::optional<Holder> holder, LiveHolder(*impl_, name));
    if (!holder) continue;  // lapsed or released meanwhile: try again
    if (holder->cookie == owner) {
      // The same owner through another connection (another process or store instance):
      // RADOS locks belong to a client instance, skerry's to an owner name. Take it over.
      r = impl_->Call([&] { return io.break_lock(name, kLockName, holder->client, holder->cookie); });
      if (r < 0 && r != -ENOENT) return RadosError(r, "rados break_lock " + Quote(name));
      continue;
    }
    SKERRY_ASSIGN_OR_RETURN(std::string record, Xattr(*impl_, name, kLeaseAttr));
    return HeldByStatus(name, holder->cookie, DecodeLease(record));
  }
  return Status::Busy("lock '" + name + "' is contended; gave up after " + std::to_string(kLockAttempts) +
                      " attempts");
}

Status RadosStore::Unlock(const std::string& name, const std::string& owner) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  librados::IoCtx& io = impl_->meta;
  Result<std::optional<Holder>> holder = LiveHolder(*impl_, name);
  if (holder.status().IsNotFound()) return Status::NotFound("lock '" + name + "' is not held");
  if (!holder.ok()) return holder.status();
  SKERRY_ASSIGN_OR_RETURN(std::string record, Xattr(*impl_, name, kLeaseAttr));
  std::optional<LockInfo> lease = DecodeLease(record);
  if (!*holder) {
    if (lease && lease->owner != owner) {
      return Status::NotFound("lock '" + name + "' is not held (the lease of '" + lease->owner + "' has expired)");
    }
    return Status::NotFound("lock '" + name + "' is not held");
  }
  const Holder& h = **holder;
  if (h.cookie != owner) return HeldByStatus(name, h.cookie, lease);
  // Clear our lease record first (only if it is still ours), then release the lock: nobody
  // else can take it, and so write a record, before the release.
  if (lease && lease->owner == owner) {
    int r = ClearRecord(*impl_, name, record);
    if (r < 0 && r != -ECANCELED) return RadosError(r, "rados setxattr " + Quote(name));
  }
  // break_lock works for our own client too.
  int r = impl_->Call([&] { return io.break_lock(name, kLockName, h.client, h.cookie); });
  if (r == -ENOENT) return Status::NotFound("lock '" + name + "' is not held (the lease has expired)");
  return r < 0 ? RadosError(r, "rados unlock " + Quote(name)) : Status::OK();
}

Result<LockInfo> RadosStore::GetLock(const std::string& name) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  Result<std::optional<Holder>> holder = LiveHolder(*impl_, name);
  if (holder.status().IsNotFound()) return Status::NotFound("lock '" + name + "' is not held");
  if (!holder.ok()) return holder.status();
  SKERRY_ASSIGN_OR_RETURN(std::string record, Xattr(*impl_, name, kLeaseAttr));
  std::optional<LockInfo> lease = DecodeLease(record);
  if (*holder) {
    const std::string& owner = (*holder)->cookie;
    // The record is written just after the lock is taken; until then the end is unknown.
    return LockInfo{owner, lease && lease->owner == owner ? lease->expires_unix_ms : NowUnixMs()};
  }
  if (lease) return *lease;  // lapsed: reads as its last holder
  return Status::NotFound("lock '" + name + "' is not held");
}

// Two cases: RADOS still has `owner`'s lock (fence its client from list_lockers, clear the
// record, break_lock), or the lease lapsed and RADOS dropped the lock, but the record still
// names `owner` (fence the client recorded beside it, clear the record: OK, like the default
// lock, for which an expired lease is still its owner's). After either, look again: the
// owner may have locked again meanwhile (through another client, or before it was fenced).
Status RadosStore::BreakLock(const std::string& name, const std::string& owner, bool fence) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  librados::IoCtx& io = impl_->meta;
  bool broke = false;  // something of owner's was released: its lock being gone is then success
  for (int attempt = 0; attempt < kLockAttempts; attempt++) {
    Result<std::optional<Holder>> holder = LiveHolder(*impl_, name);
    if (holder.status().IsNotFound()) {
      return broke ? Status::OK() : Status::NotFound("lock '" + name + "' is not held");
    }
    if (!holder.ok()) return holder.status();
    SKERRY_ASSIGN_OR_RETURN(std::string record, Xattr(*impl_, name, kLeaseAttr));
    std::optional<LockInfo> lease = DecodeLease(record);
    const bool live = *holder && (*holder)->cookie == owner;
    const bool lapsed = !*holder && lease && lease->owner == owner;
    if (!live && !lapsed) {
      if (broke) return Status::OK();  // what is there now is not owner's
      if (*holder) return HeldByStatus(name, (*holder)->cookie, lease);
      if (lease) {
        return Status::NotFound("lock '" + name + "' is not held (the lease of '" + lease->owner + "' has expired)");
      }
      return Status::NotFound("lock '" + name + "' is not held");
    }
    if (live) {
      const Holder& h = **holder;
      if (fence) SKERRY_RETURN_IF_ERROR(Fence(*impl_, name, h.client, h.address));
      // The record first, then the lock, as Unlock does.
      if (lease && lease->owner == owner) {
        int r = ClearRecord(*impl_, name, record);
        if (r < 0 && r != -ECANCELED) return RadosError(r, "rados setxattr " + Quote(name));
      }
      int r = impl_->Call([&] { return io.break_lock(name, kLockName, h.client, h.cookie); });
      if (r < 0 && r != -ENOENT) return RadosError(r, "rados break_lock " + Quote(name));
      broke = true;  // ENOENT: it lapsed or was released meanwhile; released either way
      continue;
    }
    if (fence) {
      SKERRY_ASSIGN_OR_RETURN(std::string client, Xattr(*impl_, name, kClientAttr));
      size_t sp = client.find(' ');
      if (sp == std::string::npos) {
        return Status::NotSupported("cannot fence '" + owner + "', whose lease of lock '" + name +
                                    "' has lapsed: its record names no client (written by an older skerry); "
                                    "break the lock without fencing");
      }
      SKERRY_RETURN_IF_ERROR(Fence(*impl_, name, client.substr(0, sp), client.substr(sp + 1)));
    }
    int r = ClearRecord(*impl_, name, record);
    if (r < 0 && r != -ECANCELED) return RadosError(r, "rados setxattr " + Quote(name));
    if (r == 0) broke = true;  // ECANCELED: renewed or taken meanwhile; look again
  }
  return Status::Busy("lock '" + name + "' is contended; gave up after " + std::to_string(kLockAttempts) +
                      " attempts");
}

}  // namespace skerry
