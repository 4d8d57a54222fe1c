// The URIs of the store decorators (docs/faults.md), for OpenStore:
//
//   fault:RULE[,RULE...]+INNER          FaultStore
//   delay:ms=N[&jitter=N][&ops=...]+INNER  DelayStore
//   nondurable:[crash=PATH&mode=drop|tear&seed=N]+INNER  NonDurableStore
//
// The decorator's options end at the first '+'; the rest is any store URI, decorators
// included, so they stack: "fault:error=eio&ops=sync&rate=0.01+delay:ms=2+dir:/srv/x".
#pragma once

#include <memory>
#include <string_view>

#include "skerry/object_store.h"

namespace skerry {

// Whether `uri` starts with one of the decorator schemes above.
bool IsDecoratorUri(std::string_view uri);

// Opens the decorator and, through OpenStore, its inner store. InvalidArgument (one line,
// naming the URI and the bad part) for a malformed URI.
Result<std::shared_ptr<ObjectStore>> OpenDecoratorStore(std::string_view uri);

}  // namespace skerry
