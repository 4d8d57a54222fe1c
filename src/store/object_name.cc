// IsValidObjectName (skerry/object_store.h): the object names every store accepts.
#include <string_view>

#include "skerry/object_store.h"

namespace skerry {

bool IsValidObjectName(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return name != "." && name != "..";
}

}  // namespace skerry
