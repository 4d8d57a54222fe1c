#include "nbd/inline_policy.h"

namespace skerry::nbd {

InlinePolicy::Decision InlinePolicy::Decide() const {
  uint64_t mean = mean_ns();
  if (mean < quick_ns_) return Decision::kReader;
  return mean < alone_max_ns_ ? Decision::kReaderIfAlone : Decision::kWorker;
}

void InlinePolicy::Record(uint64_t service_ns) {
  uint64_t mean = mean_ns_.load(std::memory_order_relaxed);
  mean_ns_.store(mean - mean / 8 + service_ns / 8, std::memory_order_relaxed);
}

}  // namespace skerry::nbd
