// OpenStore: turns a store URI into a store. The one place that knows every scheme.
#include <memory>
#include <string>
#include <string_view>

#include "skerry/object_store.h"
#include "store/dir/dir_store.h"
#include "store/fault/decorator_uri.h"
#include "store/mem/mem_store.h"
#if SKERRY_WITH_RADOS
#include "store/rados/rados_store.h"
#endif

namespace skerry {

Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri) {
  // Decorators over another store: fault:, delay:, nondurable: (docs/faults.md).
  if (IsDecoratorUri(uri)) return OpenDecoratorStore(uri);
  if (uri == "mem:") return std::shared_ptr<ObjectStore>(std::make_shared<MemStore>());
  if (uri.starts_with("dir:")) {
    std::string path(uri.substr(4));
    if (path.empty()) return Status::InvalidArgument("store URI 'dir:' needs a path: dir:PATH");
    SKERRY_ASSIGN_OR_RETURN(std::shared_ptr<DirStore> store, DirStore::Open(path));
    return std::shared_ptr<ObjectStore>(std::move(store));
  }
  if (uri.starts_with("rados:")) {
#if SKERRY_WITH_RADOS
    SKERRY_ASSIGN_OR_RETURN(std::shared_ptr<RadosStore> store, RadosStore::Open(uri));
    return std::shared_ptr<ObjectStore>(std::move(store));
#else
    return Status::NotSupported("this build of skerry has no RADOS support (SKERRY_RADOS=OFF)");
#endif
  }
  return Status::InvalidArgument("unknown store URI '" + std::string(uri) +
                                 "': use dir:PATH, mem: or rados:POOL[?conf=PATH&...]");
}

}  // namespace skerry
