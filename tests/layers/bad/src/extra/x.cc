// A folder of src/ that cmake/layers.cmake does not know.
#include "util/sizes.h"
