// VolumeId: the 16 random bytes that name a volume's objects forever (renames do not change it).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "skerry/status.h"

namespace skerry::volume {

struct VolumeId {
  std::array<uint8_t, 16> bytes{};

  static VolumeId Random();  // from getrandom(2)
  static Result<VolumeId> FromHex(std::string_view hex);
  std::string Hex() const;   // 32 lowercase hex digits
  bool IsZero() const;
  auto operator<=>(const VolumeId&) const = default;
};

}  // namespace skerry::volume
