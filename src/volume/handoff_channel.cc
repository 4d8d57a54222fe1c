#include "volume/handoff_channel.h"

#include <charconv>
#include <chrono>

#include "volume/format.h"

namespace skerry::volume {
namespace {

int64_t NowUnixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string Encode(const HandoffChannel::Request& r) {
  return r.requester + "\n" + std::to_string(r.asked_unix_ms) + "\n";
}

}  // namespace

HandoffChannel::HandoffChannel(ObjectStore& store, const VolumeId& id) : store_(store), object_(HandoffObject(id)) {}

Result<HandoffChannel::Request> HandoffChannel::Ask(const std::string& requester) {
  if (requester.empty() || requester.find('\n') != std::string::npos)
    return Status::InvalidArgument("a handoff requester must be non-empty and one line");
  // A plain put: of two requesters at once the later one is asked for, and the earlier one
  // asks again when it finds the lock with the later one.
  Request r{requester, NowUnixMs()};
  SKERRY_RETURN_IF_ERROR(store_.Put(object_, Encode(r)));
  return r;
}

Result<HandoffChannel::Request> HandoffChannel::Pending(int64_t max_age_ms) {
  Result<std::string> text = store_.Get(object_);
  if (text.status().IsNotFound()) return Request{};
  if (!text.ok()) return text.status();
  if (text->empty()) return Request{};
  auto bad = [&] { return Status::Corruption("handoff object '" + object_ + "' does not hold a request"); };
  size_t nl = text->find('\n');
  if (nl == 0 || nl == std::string::npos || text->back() != '\n') return bad();
  Request r;
  r.requester = text->substr(0, nl);
  const char* first = text->data() + nl + 1;
  const char* last = text->data() + text->size() - 1;
  auto [end, ec] = std::from_chars(first, last, r.asked_unix_ms);
  if (ec != std::errc() || end != last || first == last) return bad();
  if (NowUnixMs() - r.asked_unix_ms > max_age_ms) return Request{};
  return r;
}

void HandoffChannel::Clear(const Request& request) {
  // Best effort: a request left behind is ignored once it is older than the requesters' wait.
  (void)store_.CompareAndSwap(object_, Encode(request), "");
}

}  // namespace skerry::volume
