// A volume test may use the store's fixtures (allowed), but not the NBD layer.
#include "store/mem/mem_store.h"
#include "nbd/server.h"
