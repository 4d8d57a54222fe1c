// Fuzzes the decoders of every metadata object (docs/format.md). The first byte picks the
// decoder. Whatever decodes must re-encode to the same bytes (the format has one encoding),
// and nothing may crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "volume/format.h"

using namespace skerry::volume;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      if (auto h = DecodeHeader(in, "fuzz"); h.ok() && EncodeHeader(*h) != in) std::abort();
      break;
    case 1:
      if (auto c = DecodeChunk(in, "fuzz"); c.ok() && EncodeChunk(*c) != in) {
        // Reserved bytes are ignored on read and written as zero: compare decoded values.
        auto again = DecodeChunk(EncodeChunk(*c), "fuzz");
        if (!again.ok() || again->entries.size() != c->entries.size()) std::abort();
        for (size_t i = 0; i < c->entries.size(); i++)
          if (!(again->entries[i] == c->entries[i])) std::abort();
      }
      break;
    case 2:
      if (auto r = DecodeSnapshotRecord(in, "fuzz"); r.ok() && EncodeSnapshotRecord(*r) != in) std::abort();
      break;
    case 3:
      if (auto d = DecodeDirectory(in, "fuzz"); d.ok() && EncodeDirectory(*d) != in) std::abort();
      break;
  }
  return 0;
}
