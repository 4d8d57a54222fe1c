// Milliseconds on the steady (monotonic) clock: for deadlines and elapsed times, never for
// wall-clock display.
#pragma once

#include <chrono>
#include <cstdint>

namespace skerry {

inline int64_t SteadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace skerry
