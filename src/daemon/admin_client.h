// The admin protocol between `skerry` and `skerryd`: one JSON request per connection on a
// Unix socket, one JSON line back.
//
//   {"op":"snap_create","volume":"vm1","volume_id":"<32 hex>","lock_owner":"skerryd@...","snap":"s1"}
//   {"op":"resize","volume":"vm1","volume_id":"<32 hex>","lock_owner":"...","size":21474836480,"allow_shrink":false}
// "volume_id" and "lock_owner" (optional) are what the CLI found in its store: the daemon acts
// only if the volume it has open under that name has that id and that lock is its own.
//   {"op":"status"}
// answer: {"ok":true, ...} or {"ok":false,"code":"busy","error":"one line"}
//
// The CLI finds the daemon that holds a volume from the volume's write lock: a daemon's
// lock owner reads "skerryd@HOST:PID#N admin=PATH".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "skerry/status.h"

namespace skerry::admin {

// Sends `request` to the daemon listening on `socket_path`, returns its answer; a
// {"ok":false} answer becomes the Status it describes. TimedOut if the daemon takes no
// connection within 10 s or gives no answer within 5 minutes ($SKERRY_ADMIN_TIMEOUT seconds).
Result<nlohmann::json> Call(const std::string& socket_path, const nlohmann::json& request);

// The admin socket named in a lock owner string, or empty.
std::string AdminSocketOf(const std::string& lock_owner);

// Status <-> JSON error, shared by client and server.
nlohmann::json ErrorJson(const Status& st);
Status StatusFromJson(const nlohmann::json& answer);

}  // namespace skerry::admin
