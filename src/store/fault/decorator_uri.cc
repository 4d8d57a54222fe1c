#include "store/fault/decorator_uri.h"

#include <string>

#include "store/fault/delay_store.h"
#include "store/fault/fault_store.h"
#include "store/fault/nondurable_store.h"

namespace skerry {
namespace {

constexpr std::string_view kSchemes[] = {"fault:", "delay:", "nondurable:"};

}  // namespace

bool IsDecoratorUri(std::string_view uri) {
  for (std::string_view s : kSchemes)
    if (uri.starts_with(s)) return true;
  return false;
}

Result<std::shared_ptr<ObjectStore>> OpenDecoratorStore(std::string_view uri) {
  size_t colon = uri.find(':');
  std::string_view scheme = uri.substr(0, colon);
  auto bad = [&](const Status& st) {
    return Status::InvalidArgument("store URI '" + std::string(uri) + "': " + st.message());
  };
  size_t plus = uri.find('+');
  if (colon == std::string_view::npos || plus == std::string_view::npos || plus + 1 == uri.size())
    return bad(Status::InvalidArgument(std::string(scheme) + ": needs an inner store after '+', e.g. " +
                                       std::string(scheme) + ":...+dir:/srv/skerry"));
  std::string spec(uri.substr(colon + 1, plus - colon - 1));
  std::string_view inner_uri = uri.substr(plus + 1);

  // Options first, so a bad decorator is reported before the inner store is opened.
  std::vector<FaultRule> rules;
  DelayOptions delay;
  NonDurableOptions nondurable;
  if (scheme == "fault") {
    auto r = ParseFaultRules(spec);
    if (!r.ok()) return bad(r.status());
    rules = std::move(*r);
  } else if (scheme == "delay") {
    auto d = ParseDelayOptions(spec);
    if (!d.ok()) return bad(d.status());
    delay = *d;
  } else if (scheme == "nondurable") {
    auto n = ParseNonDurableOptions(spec);
    if (!n.ok()) return bad(n.status());
    nondurable = std::move(*n);
  } else {
    return bad(Status::InvalidArgument("not a store decorator"));
  }

  auto inner = OpenStore(inner_uri);
  if (!inner.ok()) return inner.status();
  if (scheme == "fault") return std::shared_ptr<ObjectStore>(std::make_shared<FaultStore>(*inner, std::move(rules), spec));
  if (scheme == "delay") return std::shared_ptr<ObjectStore>(std::make_shared<DelayStore>(*inner, delay, spec));
  return std::shared_ptr<ObjectStore>(std::make_shared<NonDurableStore>(*inner, std::move(nondurable), spec));
}

}  // namespace skerry
