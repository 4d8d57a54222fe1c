// The one place where a skerry Status becomes an NBD error value.
//
// The protocol allows only EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP and
// ESHUTDOWN on the wire; every other errno is folded into one of them (docs/nbd.md
// has the table).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "skerry/status.h"

namespace skerry::nbd {

// errno (as from Status::sys_errno()) -> NBD error. REQUIRES: err != 0.
uint32_t NbdErrorFromErrno(int err);

// A failed Status -> NBD error. REQUIRES: !status.ok().
inline uint32_t NbdErrorFromStatus(const Status& status) {
  return NbdErrorFromErrno(status.sys_errno());
}

}  // namespace skerry::nbd
