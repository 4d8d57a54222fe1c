// Volume code may not use the store's internals (only its tests may), nor bare names.
#include "skerry/volume.h"
#include "volume/format.h"
#include "store/mem/mem_store.h"
#include "format.h"
