// Human sizes on the command line and in config: "10G", "4M", "512", "1.5T" is refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "skerry/status.h"

namespace skerry {

// Parses an integer with an optional binary suffix K, M, G, T, P (also KiB, MiB, ...;
// case-insensitive; "B" alone means bytes). Overflow and junk are InvalidArgument.
Result<uint64_t> ParseSize(std::string_view text);
// 4194304 -> "4 MiB", 1536 -> "1.5 KiB".
std::string FormatSize(uint64_t bytes);

}  // namespace skerry
