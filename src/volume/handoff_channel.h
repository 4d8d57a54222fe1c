// HandoffChannel: how a standby open of a volume asks the holder of its write lock to hand
// the volume over, through nothing but the store both share.
//
// The request is one object, v.<id>.handoff (docs/format.md): empty, or
// "REQUESTER\nASKED_UNIX_MS\n". The requester puts it; the holder looks at it every few milliseconds while it writes (Pending)
// and, once it has handed over, empties it (Clear, a compare-and-swap from exactly the
// request it served, so a newer request is never lost). Polling an object is what works on
// every store: a directory on NFS has no change notification between hosts, but its
// close-to-open consistency makes every Get see the latest Put.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "skerry/object_store.h"
#include "volume/volume_id.h"

namespace skerry::volume {

class HandoffChannel {
 public:
  HandoffChannel(ObjectStore& store, const VolumeId& id);

  struct Request {
    std::string requester;  // empty: nobody asks
    int64_t asked_unix_ms = 0;
  };

  // Asks whoever holds the write lock to hand the volume over to `requester` (one line).
  // Returns the request made, for Clear.
  Result<Request> Ask(const std::string& requester);
  // The request standing now, if it was made less than `max_age_ms` ago (wall clock, as
  // leases: clocks are assumed to agree to well within it). An older one is left over from
  // a requester that gave up or died, and must not make a writer hand over to nobody.
  Result<Request> Pending(int64_t max_age_ms);
  // Withdraws `request` (served, or given up); a newer one stays.
  void Clear(const Request& request);

  const std::string& object() const { return object_; }

 private:
  ObjectStore& store_;
  const std::string object_;
};

}  // namespace skerry::volume
