#include "util/sizes.h"

#include <fmt/format.h>

#include <cctype>

namespace skerry {

Result<uint64_t> ParseSize(std::string_view text) {
  std::string_view s = text;
  if (s.empty()) return Status::InvalidArgument("empty size");
  uint64_t value = 0;
  size_t i = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); i++) {
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (value > (UINT64_MAX - digit) / 10)
      return Status::InvalidArgument(fmt::format("size '{}' is too large", text));
    value = value * 10 + digit;
  }
  if (i == 0) return Status::InvalidArgument(fmt::format("size '{}' does not start with a number", text));
  std::string suffix;
  for (; i < s.size(); i++) suffix += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
  int shift = 0;
  if (suffix.empty() || suffix == "B") shift = 0;
  else if (suffix == "K" || suffix == "KB" || suffix == "KIB") shift = 10;
  else if (suffix == "M" || suffix == "MB" || suffix == "MIB") shift = 20;
  else if (suffix == "G" || suffix == "GB" || suffix == "GIB") shift = 30;
  else if (suffix == "T" || suffix == "TB" || suffix == "TIB") shift = 40;
  else if (suffix == "P" || suffix == "PB" || suffix == "PIB") shift = 50;
  else return Status::InvalidArgument(fmt::format("size '{}' has an unknown suffix (use K, M, G, T or P)", text));
  if (shift && value > (UINT64_MAX >> shift))
    return Status::InvalidArgument(fmt::format("size '{}' is too large", text));
  return value << shift;
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && unit < 6) {
    v /= 1024;
    unit++;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  if (v == static_cast<double>(static_cast<uint64_t>(v))) return fmt::format("{} {}", static_cast<uint64_t>(v), kUnits[unit]);
  return fmt::format("{:.1f} {}", v, kUnits[unit]);
}

}  // namespace skerry
