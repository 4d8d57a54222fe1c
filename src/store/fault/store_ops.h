// The operation classes of the ObjectStore interface, as the fault and delay decorators
// name them in URIs ("ops=write|copy"), and the KEY=VALUE&... option syntax they share.
//
// Plain values and functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "skerry/status.h"

namespace skerry {

// One bit per class. Lock covers Lock, Unlock, GetLock and BreakLock.
enum class StoreOp : uint32_t {
  kRead = 1u << 0,
  kWrite = 1u << 1,
  kZero = 1u << 2,
  kCopy = 1u << 3,
  kSync = 1u << 4,
  kGet = 1u << 5,
  kPut = 1u << 6,
  kCreate = 1u << 7,
  kCas = 1u << 8,
  kTruncate = 1u << 9,
  kStat = 1u << 10,
  kDelete = 1u << 11,
  kList = 1u << 12,
  kLock = 1u << 13,
};
inline constexpr uint32_t kAllStoreOps = (1u << 14) - 1;

inline uint32_t Bit(StoreOp op) { return static_cast<uint32_t>(op); }
// "read", "write", ... as in URIs.
const char* StoreOpName(StoreOp op);
// "read|write|...|all": the names a URI may use, for messages.
std::string StoreOpNames();
// Parses "write|copy" or "all" into a mask. InvalidArgument naming the unknown class.
Result<uint32_t> ParseStoreOps(std::string_view text);

// Splits "k1=v1&k2=v2" into pairs, in order. InvalidArgument for an empty part, a part
// without '=', an empty key or a key given twice. `what` names the spec in messages.
Result<std::vector<std::pair<std::string, std::string>>> SplitOptions(std::string_view text, std::string_view what);

// Whole-string number parsers for option values; InvalidArgument naming `key` otherwise.
Result<uint64_t> ParseUnsignedOption(std::string_view key, std::string_view value);
Result<double> ParseRateOption(std::string_view key, std::string_view value);  // 0 <= rate <= 1

}  // namespace skerry
