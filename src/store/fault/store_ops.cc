#include "store/fault/store_ops.h"

#include <charconv>
#include <cstdlib>
#include <set>

namespace skerry {
namespace {

constexpr std::pair<StoreOp, const char*> kOpNames[] = {
    {StoreOp::kRead, "read"},     {StoreOp::kWrite, "write"}, {StoreOp::kZero, "zero"},
    {StoreOp::kCopy, "copy"},     {StoreOp::kSync, "sync"},   {StoreOp::kGet, "get"},
    {StoreOp::kPut, "put"},       {StoreOp::kCreate, "create"}, {StoreOp::kCas, "cas"},
    {StoreOp::kTruncate, "truncate"}, {StoreOp::kStat, "stat"}, {StoreOp::kDelete, "delete"},
    {StoreOp::kList, "list"},     {StoreOp::kLock, "lock"},
};

}  // namespace

const char* StoreOpName(StoreOp op) {
  for (auto& [o, name] : kOpNames)
    if (o == op) return name;
  return "?";
}

std::string StoreOpNames() {
  std::string out;
  for (auto& [o, name] : kOpNames) out += std::string(name) + "|";
  return out + "all";
}

Result<uint32_t> ParseStoreOps(std::string_view text) {
  uint32_t mask = 0;
  size_t start = 0;
  while (true) {
    size_t bar = text.find('|', start);
    std::string_view part = text.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
    uint32_t bit = 0;
    if (part == "all") bit = kAllStoreOps;
    for (auto& [o, name] : kOpNames)
      if (part == name) bit = Bit(o);
    if (bit == 0)
      return Status::InvalidArgument("unknown operation '" + std::string(part) + "' in ops=" + std::string(text) +
                                     " (use " + StoreOpNames() + ")");
    mask |= bit;
    if (bar == std::string_view::npos) break;
    start = bar + 1;
  }
  return mask;
}

Result<std::vector<std::pair<std::string, std::string>>> SplitOptions(std::string_view text, std::string_view what) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> seen;
  if (text.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t amp = text.find('&', start);
    std::string_view part = text.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    size_t eq = part.find('=');
    if (part.empty() || eq == std::string_view::npos || eq == 0)
      return Status::InvalidArgument("bad option '" + std::string(part) + "' in " + std::string(what) +
                                     " (want KEY=VALUE, joined with '&')");
    std::string key(part.substr(0, eq));
    if (!seen.insert(key).second)
      return Status::InvalidArgument("option '" + key + "' given twice in " + std::string(what));
    out.emplace_back(key, std::string(part.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

Result<uint64_t> ParseUnsignedOption(std::string_view key, std::string_view value) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size())
    return Status::InvalidArgument(std::string(key) + "=" + std::string(value) + " is not a whole number");
  return v;
}

Result<double> ParseRateOption(std::string_view key, std::string_view value) {
  std::string s(value);
  char* end = nullptr;
  double v = s.empty() ? -1 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v >= 0 && v <= 1))
    return Status::InvalidArgument(std::string(key) + "=" + s + " is not a probability between 0 and 1");
  return v;
}

}  // namespace skerry
