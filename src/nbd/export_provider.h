// ExportProvider: what the NBD server serves, and the only thing it needs from the
// layers below. The daemon implements it over its Catalog; tests implement it over
// in-memory volumes (tests/nbd/mem_export_provider.h).
//
// Export names are what clients ask for: "NAME" is volume NAME opened for reading
// and writing, "NAME@SNAP" is snapshot SNAP of it, read-only. Whether an export is
// writable is taken from Volume::read_only() of what OpenExport returns.
//
// The multi-conn contract. The server advertises NBD_FLAG_CAN_MULTI_CONN on every
// export, so clients such as nbdcopy open several connections to one export and
// flush on only one of them. That is correct only because implementations promise:
//   while connections to one export name are open at the same time, OpenExport
//   returns every one of them the SAME Volume object, and that Volume's Flush()
//   makes durable every write completed on it, whichever connection issued it.
// (The Volume contract already says Flush covers every write completed before it
// was called; sharing one object per export is what the provider adds.)
//
// Lifetime: every successful OpenExport is matched by exactly one ReleaseExport,
// called after the last request of that connection has completed and, for writable
// exports, after a flush. The daemon refcounts opens and closes a volume when its
// last user releases it. NBD_OPT_INFO calls DescribeExport instead: a client asking
// what an export is (nbdinfo --list asks about every one) must not take its write lock.
//
// Thread-safety: every method may be called concurrently from many connections.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "skerry/status.h"
#include "skerry/volume.h"

namespace skerry::nbd {

class ExportProvider {
 public:
  virtual ~ExportProvider() = default;

  // The export `name` for one connection. Any error is reported to the client as
  // NBD_REP_ERR_UNKNOWN carrying the Status message (NotFound is the usual one).
  virtual Result<std::shared_ptr<Volume>> OpenExport(const std::string& name) = 0;

  // The connection is done with a volume OpenExport returned for `name`.
  virtual void ReleaseExport(const std::string& name, const std::shared_ptr<Volume>& volume) = 0;

  // What NBD_OPT_INFO reports about `name`, without keeping it open. The default opens
  // and releases it; the daemon answers without taking the volume's write lock.
  struct ExportInfo {
    uint64_t size = 0;
    bool read_only = false;
  };
  virtual Result<ExportInfo> DescribeExport(const std::string& name) {
    SKERRY_ASSIGN_OR_RETURN(auto volume, OpenExport(name));
    ExportInfo info{volume->size(), volume->read_only()};
    ReleaseExport(name, volume);
    return info;
  }

  // Names for NBD_OPT_LIST (volumes, and snapshots as "NAME@SNAP" if wanted).
  virtual Result<std::vector<std::string>> ListExports() = 0;
};

}  // namespace skerry::nbd
