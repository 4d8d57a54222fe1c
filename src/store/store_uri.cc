// OpenStore: turns a store URI into a store. The one place that knows every scheme.
#include <memory>
#include <string>
#include <string_view>

#include "skerry/object_store.h"
#include "store/dir/dir_store.h"
#include "store/mem/mem_store.h"

namespace skerry {

Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri) {
  if (uri == "mem:") return std::shared_ptr<ObjectStore>(std::make_shared<MemStore>());
  if (uri.starts_with("dir:")) {
    std::string path(uri.substr(4));
    if (path.empty()) return Status::InvalidArgument("store URI 'dir:' needs a path: dir:PATH");
    SKERRY_ASSIGN_OR_RETURN(std::shared_ptr<DirStore> store, DirStore::Open(path));
    return std::shared_ptr<ObjectStore>(std::move(store));
  }
  return Status::InvalidArgument("unknown store URI '" + std::string(uri) + "': use dir:PATH or mem:");
}

}  // namespace skerry
