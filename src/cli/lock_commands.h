// `skerry lock ls|break VOLUME` and `skerry status VOLUME`: who writes a volume, who waits
// for it, and breaking the lock of a holder that is gone (docs/operations.md, "Live
// migration" and "Host failure").
#pragma once

#include <string>

#include "skerry/volume.h"

namespace skerry::cli {

Status LockList(Catalog& catalog, const std::string& volume, bool json);
// Breaks the lock if `owner` holds it (empty: whoever holds it now, as read just before),
// fencing that owner where the store can.
Status LockBreak(Catalog& catalog, const std::string& volume, const std::string& owner, bool json);
// The lock as LockList, plus what the holder's daemon says of the volume when its admin
// socket is reachable from here (same host): its role and clients.
Status VolumeStatus(Catalog& catalog, const std::string& volume, bool json);

}  // namespace skerry::cli
