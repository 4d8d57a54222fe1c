#include "nbd/errors.h"

#include <cerrno>

#include "nbd/protocol.h"

namespace skerry::nbd {

uint32_t NbdErrorFromErrno(int err) {
  switch (err) {
    case EPERM:
    case EACCES:
    case EROFS:  // Status::ReadOnly: the export (or the store below it) refuses writes
      return kEperm;
    case ENOMEM: return kEnomem;
    case EINVAL: return kEinval;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:  // the spec asks for EDQUOT and EFBIG to be reported as ENOSPC
      return kEnospc;
    case EOVERFLOW: return kEoverflow;
    case EOPNOTSUPP:  // == ENOTSUP on Linux
      return kEnotsup;
    case ESHUTDOWN: return kEshutdown;
    default:
      // EIO itself, and everything the protocol has no word for (ENOENT of a
      // vanished object, EBUSY, ETIMEDOUT of the store, EAGAIN of a lost race):
      // to the client these are all "the disk failed this request".
      return kEio;
  }
}

}  // namespace skerry::nbd
