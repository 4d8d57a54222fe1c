// util reaching up into the store layer: the layers check must reject it.
#pragma once
#include "store/dir/dir_store.h"
