// Reading and atomically updating a store's directory and volume headers.
//
// Every update is read → change → compare-and-swap, retried on Conflict, so several
// processes (CLI, daemons on other hosts) can change metadata of one store safely.
#pragma once

#include <functional>
#include <string>

#include "skerry/object_store.h"
#include "volume/format.h"

namespace skerry::volume {

// The directory, empty if the store has none yet.
Result<Directory> ReadDirectory(ObjectStore& store);
// Applies `change` to the current directory and stores it atomically. If `change` returns an
// error nothing is written and the error is returned.
Status UpdateDirectory(ObjectStore& store, const std::function<Status(Directory&)>& change);

Result<Header> ReadHeader(ObjectStore& store, const VolumeId& id);
// As UpdateDirectory, for the header of volume `id`; bumps the generation.
Status UpdateHeader(ObjectStore& store, const VolumeId& id, const std::function<Status(Header&)>& change);

Result<SnapshotRecord> ReadSnapshotRecord(ObjectStore& store, const VolumeId& id, uint64_t snap_id);

int64_t NowUnixMs();

}  // namespace skerry::volume
