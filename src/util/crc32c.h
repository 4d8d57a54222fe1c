// CRC32C (Castagnoli), the checksum of every map header and chunk (docs/format.md).
// Uses the SSE4.2 instruction when the CPU has it, else a table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace skerry {

// Extends `crc` (start with 0) over data[0..n).
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(std::string_view s) { return Crc32c(0, s.data(), s.size()); }

}  // namespace skerry
