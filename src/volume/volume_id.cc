#include "volume/volume_id.h"

#include <sys/random.h>

#include <cerrno>

#include "util/sha256.h"

namespace skerry::volume {

VolumeId VolumeId::Random() {
  VolumeId id;
  size_t got = 0;
  while (got < id.bytes.size()) {
    ssize_t n = getrandom(id.bytes.data() + got, id.bytes.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    else if (errno != EINTR) std::abort();  // the kernel always has entropy after boot
  }
  return id;
}

Result<VolumeId> VolumeId::FromHex(std::string_view hex) {
  if (hex.size() != 32) return Status::InvalidArgument("volume id must be 32 hex digits");
  VolumeId id;
  for (size_t i = 0; i < 16; i++) {
    int v = 0;
    for (int k = 0; k < 2; k++) {
      char c = hex[2 * i + k];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      if (d < 0) return Status::InvalidArgument("volume id must be 32 lowercase hex digits");
      v = v * 16 + d;
    }
    id.bytes[i] = static_cast<uint8_t>(v);
  }
  return id;
}

std::string VolumeId::Hex() const { return ToHex(bytes.data(), bytes.size()); }

bool VolumeId::IsZero() const {
  for (uint8_t b : bytes)
    if (b) return false;
  return true;
}

}  // namespace skerry::volume
