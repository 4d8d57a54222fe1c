// SHA-256 of a byte range (OpenSSL): names content-addressed blocks.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace skerry {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
std::string ToHex(const uint8_t* data, size_t n);
inline std::string ToHex(const Sha256Digest& d) { return ToHex(d.data(), d.size()); }

}  // namespace skerry
