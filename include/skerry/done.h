// Done: the completion callback of skerry's asynchronous calls.
//
// A call that returns before its work is done (ObjectStore::Write, Volume::ReadAsync, ...)
// takes a `Done` and runs it exactly once, inline or on another thread, with the outcome.
// It lives in a header of its own, below object_store.h, so that helpers of every layer
// (util's FanIn) can use it without depending on the store interface.
#pragma once

#include <cstddef>
#include <functional>

#include "skerry/status.h"

namespace skerry {

using Done = std::function<void(Status)>;
// A read's completion: the number of bytes filled, or the error.
using ReadDone = std::function<void(Result<size_t>)>;

}  // namespace skerry
