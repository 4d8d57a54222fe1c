// Fuzzes skerryd's config parser: any text gets a config or a one-line error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  skerry::daemon::DaemonConfig config;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)skerry::daemon::LoadConfigText(text, "<fuzz>", &config);
  return 0;
}
