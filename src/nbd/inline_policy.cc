#include "nbd/inline_policy.h"

#include <algorithm>

namespace skerry::nbd {

InlinePolicy::Decision InlinePolicy::Decide() const {
  uint64_t mean = mean_ns();
  if (mean < kQuickNs) return Decision::kReader;
  return mean < kAloneMaxNs ? Decision::kReaderIfAlone : Decision::kWorker;
}

void InlinePolicy::Record(uint64_t service_ns) {
  uint64_t ns = std::min(service_ns, kMaxSampleNs);
  uint64_t mean = mean_ns_.load(std::memory_order_relaxed);
  mean_ns_.store(mean - mean / 8 + ns / 8, std::memory_order_relaxed);
}

}  // namespace skerry::nbd
