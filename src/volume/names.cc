#include <fmt/format.h>

#include "skerry/volume.h"

namespace skerry {
namespace {

// The first `max` bytes of `text`, less a UTF-8 character that would be cut in two: the
// message goes out in JSON (the admin socket), which must be valid UTF-8.
std::string_view Abbreviated(std::string_view text, size_t max) {
  if (text.size() <= max) return text;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) end--;
  return text.substr(0, end);
}

}  // namespace

Status ValidateVolumeName(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("name is empty");
  if (name.size() > 100) return Status::InvalidArgument(fmt::format("name '{}...' is longer than 100 characters", Abbreviated(name, 20)));
  if (name[0] == '.' || name[0] == '-')
    return Status::InvalidArgument(fmt::format("name '{}' must not start with '.' or '-'", name));
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return Status::InvalidArgument(fmt::format("name '{}' has a character other than A-Z a-z 0-9 _ . -", name));
  }
  return Status::OK();
}

Status ValidateBlockSize(uint64_t bs) {
  if (bs < kMinBlockSize || bs > kMaxBlockSize || (bs & (bs - 1)) != 0)
    return Status::InvalidArgument(fmt::format("block size {} is not a power of two from 64K to 64M", bs));
  return Status::OK();
}

Status ValidateVolumeSize(uint64_t size) {
  if (size == 0) return Status::InvalidArgument("size must be greater than zero");
  if (size % kSectorSize != 0) return Status::InvalidArgument(fmt::format("size {} is not a multiple of 512 bytes", size));
  if (size > kMaxVolumeSize) return Status::InvalidArgument(fmt::format("size {} is larger than the 64 PiB maximum", size));
  return Status::OK();
}

Status SplitSpec(std::string_view spec, std::string* volume, std::string* snap) {
  size_t at = spec.find('@');
  *volume = std::string(spec.substr(0, at));
  *snap = at == std::string_view::npos ? std::string() : std::string(spec.substr(at + 1));
  SKERRY_RETURN_IF_ERROR(ValidateVolumeName(*volume).Prefixed("volume"));
  if (at != std::string_view::npos) SKERRY_RETURN_IF_ERROR(ValidateVolumeName(*snap).Prefixed("snapshot"));
  return Status::OK();
}

Result<CopyUpMode> ParseCopyUpMode(std::string_view text) {
  if (text == "background") return CopyUpMode::kBackground;
  if (text == "on-demand") return CopyUpMode::kOnDemand;
  if (text == "off") return CopyUpMode::kOff;
  return Status::InvalidArgument(fmt::format("copy-up mode '{}': expected background, on-demand or off", text));
}

const char* VolumeRoleName(VolumeRole role) {
  switch (role) {
    case VolumeRole::kReadOnly: return "read-only";
    case VolumeRole::kWriter: return "writer";
    case VolumeRole::kStandby: return "standby";
    case VolumeRole::kHandedOver: return "handed-over";
  }
  return "?";
}

}  // namespace skerry
