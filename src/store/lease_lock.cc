// The default lease lock of every ObjectStore, built only on Create, Get and
// CompareAndSwap of one object named after the lock.
//
// The lock object holds "OWNER\nEXPIRES_UNIX_MS\n" while held and is empty once
// released. Unlock empties it with a compare-and-swap instead of deleting it: a
// delete after checking the owner could remove a lease another owner took over in
// between, and the interface has no compare-and-delete. So a lock object, once made,
// stays in the store (as an empty object) until the lock's user deletes it.
// BreakLock is Unlock on behalf of an owner known to be dead: the lock object cannot tell
// who calls, and a store of this kind has no way to fence anyone.
//
// Expiry uses the wall clock (milliseconds since the Unix epoch) because leases are
// compared across hosts; clocks are assumed to agree to well within a lease.
#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "skerry/object_store.h"

namespace skerry {
namespace {

// How often Lock/Unlock retry after losing a compare-and-swap race before giving up.
constexpr int kMaxRaceRetries = 32;

int64_t NowUnixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string EncodeLease(const std::string& owner, int64_t expires_unix_ms) {
  return owner + "\n" + std::to_string(expires_unix_ms) + "\n";
}

// nullopt for a released lock (empty object).
Result<std::optional<LockInfo>> DecodeLease(const std::string& name, std::string_view text) {
  if (text.empty()) return std::optional<LockInfo>();
  auto bad = [&] { return Status::Corruption("lock object '" + name + "' does not hold a lease"); };
  size_t nl = text.find('\n');
  if (nl == 0 || nl == std::string_view::npos || text.back() != '\n') return bad();
  std::string_view num = text.substr(nl + 1, text.size() - nl - 2);
  int64_t expires = 0;
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), expires);
  if (ec != std::errc() || end != num.data() + num.size() || num.empty()) return bad();
  return std::optional<LockInfo>(LockInfo{std::string(text.substr(0, nl)), expires});
}

std::string HeldBy(const std::string& name, const LockInfo& info, int64_t now) {
  return "lock '" + name + "' is held by '" + info.owner + "' for another " +
         std::to_string(info.expires_unix_ms - now) + " ms";
}

// Unlock and BreakLock: empties the lock object if `owner`'s lease is in it, expired or not.
// The compare-and-swap is against exactly the lease text read, so a lease renewed or taken
// over in between is never released.
Status Release(ObjectStore& store, const std::string& name, const std::string& owner) {
  for (int attempt = 0; attempt < kMaxRaceRetries; attempt++) {
    Result<std::string> current = store.Get(name);
    if (current.status().IsNotFound()) return Status::NotFound("lock '" + name + "' is not held");
    if (!current.ok()) return current.status();
    SKERRY_ASSIGN_OR_RETURN(std::optional<LockInfo> held, DecodeLease(name, *current));
    if (!held) return Status::NotFound("lock '" + name + "' is not held");
    int64_t now = NowUnixMs();
    if (held->owner != owner) {
      if (now >= held->expires_unix_ms) {
        return Status::NotFound("lock '" + name + "' is not held (the lease of '" + held->owner +
                                "' has expired)");
      }
      return Status::Busy(HeldBy(name, *held, now));
    }
    Status st = store.CompareAndSwap(name, *current, "");
    if (st.ok() || !(st.IsConflict() || st.IsNotFound())) return st;
  }
  return Status::Busy("lock '" + name + "' is contended; gave up after " +
                      std::to_string(kMaxRaceRetries) + " attempts");
}

}  // namespace

Status ObjectStore::Lock(const std::string& name, const std::string& owner, int64_t lease_ms) {
  if (owner.empty() || owner.find('\n') != std::string::npos) {
    return Status::InvalidArgument("lock owner must be non-empty and one line");
  }
  if (lease_ms <= 0) return Status::InvalidArgument("lock lease must be positive");
  for (int attempt = 0; attempt < kMaxRaceRetries; attempt++) {
    int64_t now = NowUnixMs();
    std::string mine = EncodeLease(owner, now + lease_ms);
    Status st = Create(name, mine);
    if (st.ok() || !st.IsAlreadyExists()) return st;

    Result<std::string> current = Get(name);
    if (current.status().IsNotFound()) continue;  // deleted since Create saw it
    if (!current.ok()) return current.status();
    SKERRY_ASSIGN_OR_RETURN(std::optional<LockInfo> held, DecodeLease(name, *current));
    // Free, ours (renewal), or lapsed: take it, unless someone else changes it first.
    if (held && held->owner != owner && now < held->expires_unix_ms) {
      return Status::Busy(HeldBy(name, *held, now));
    }
    st = CompareAndSwap(name, *current, mine);
    if (st.ok() || !(st.IsConflict() || st.IsNotFound())) return st;
  }
  return Status::Busy("lock '" + name + "' is contended; gave up after " +
                      std::to_string(kMaxRaceRetries) + " attempts");
}

Status ObjectStore::Unlock(const std::string& name, const std::string& owner) {
  return Release(*this, name, owner);
}

// Breaking is releasing on the owner's behalf: the lease object does not know who calls.
// No fencing here (fences_lock_holders is false): a store that can fence overrides this.
Status ObjectStore::BreakLock(const std::string& name, const std::string& owner, bool /*fence*/) {
  return Release(*this, name, owner);
}

Result<LockInfo> ObjectStore::GetLock(const std::string& name) {
  Result<std::string> current = Get(name);
  if (current.status().IsNotFound()) return Status::NotFound("lock '" + name + "' is not held");
  if (!current.ok()) return current.status();
  SKERRY_ASSIGN_OR_RETURN(std::optional<LockInfo> held, DecodeLease(name, *current));
  if (!held) return Status::NotFound("lock '" + name + "' is not held");
  return *held;
}

}  // namespace skerry
