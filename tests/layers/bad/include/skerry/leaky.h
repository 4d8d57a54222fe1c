// A public header that reaches into src/: the layers check must reject it.
#pragma once
#include "skerry/status.h"
#include "util/sizes.h"
