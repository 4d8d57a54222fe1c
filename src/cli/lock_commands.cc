#include "cli/lock_commands.h"

#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "daemon/admin_client.h"

namespace skerry::cli {
namespace {

int64_t NowUnixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

nlohmann::json LockJson(const std::string& volume, const VolumeLockState& s, int64_t now) {
  nlohmann::json j = {{"volume", volume}, {"locked", false}};
  if (s.holder) {
    j["locked"] = now < s.holder->expires_unix_ms;
    j["owner"] = s.holder->owner;
    j["expires_unix_ms"] = s.holder->expires_unix_ms;
    j["expires_in_ms"] = s.holder->expires_unix_ms - now;
  }
  if (!s.handoff_requester.empty()) {
    j["handoff_requester"] = s.handoff_requester;
    j["handoff_asked_ms_ago"] = now - s.handoff_asked_unix_ms;
  }
  return j;
}

void PrintLock(const VolumeLockState& s, int64_t now) {
  if (!s.holder) {
    fmt::print("lock:       free\n");
  } else if (now < s.holder->expires_unix_ms) {
    fmt::print("lock:       held by {}\n", s.holder->owner);
    fmt::print("lease:      {:.1f} s left (renewed by its holder while it runs)\n",
               (s.holder->expires_unix_ms - now) / 1000.0);
  } else {
    fmt::print("lock:       free (the lease of {} lapsed {:.1f} s ago)\n", s.holder->owner,
               (now - s.holder->expires_unix_ms) / 1000.0);
  }
  if (!s.handoff_requester.empty())
    fmt::print("handoff:    {} asked for it {:.1f} s ago\n", s.handoff_requester, (now - s.handoff_asked_unix_ms) / 1000.0);
}

}  // namespace

Status LockList(Catalog& catalog, const std::string& volume, bool json) {
  SKERRY_ASSIGN_OR_RETURN(VolumeLockState s, catalog.LockState(volume));
  const int64_t now = NowUnixMs();
  if (json) std::cout << LockJson(volume, s, now).dump(2) << "\n";
  else PrintLock(s, now);
  return Status::OK();
}

Status LockBreak(Catalog& catalog, const std::string& volume, const std::string& owner, bool json) {
  std::string victim = owner;
  if (victim.empty()) {
    SKERRY_ASSIGN_OR_RETURN(VolumeLockState s, catalog.LockState(volume));
    if (!s.holder) return Status::NotFound(fmt::format("volume '{}' is not locked", volume));
    victim = s.holder->owner;
  }
  SKERRY_RETURN_IF_ERROR(catalog.BreakLock(volume, victim, /*fence=*/true));
  if (json) std::cout << nlohmann::json{{"volume", volume}, {"broken", victim}}.dump(2) << "\n";
  else fmt::print("broke the lock of {} held by {}\n", volume, victim);
  return Status::OK();
}

Status VolumeStatus(Catalog& catalog, const std::string& volume, bool json) {
  SKERRY_ASSIGN_OR_RETURN(VolumeLockState s, catalog.LockState(volume));
  const int64_t now = NowUnixMs();
  nlohmann::json j = LockJson(volume, s, now);
  std::string socket = s.holder ? admin::AdminSocketOf(s.holder->owner) : "";
  std::string daemon_view;
  if (!socket.empty()) {
    auto answer = admin::Call(socket, {{"op", "status"}});
    if (!answer.ok()) {
      daemon_view = fmt::format("not reachable from here ({})", answer.status().message());
      j["holder_daemon"] = {{"reachable", false}, {"error", answer.status().message()}};
    } else {
      nlohmann::json opens = nlohmann::json::array();
      for (const auto& e : answer->value("exports", nlohmann::json::array()))
        if (e.value("name", "") == volume) opens.push_back(e);
      j["holder_daemon"] = {{"reachable", true}, {"opens", opens}};
      for (const auto& e : opens)
        daemon_view += fmt::format("{}{} with {} client(s)", daemon_view.empty() ? "" : "; ",
                                   e.value("role", "?"), e.value("clients", 0));
      if (opens.empty()) daemon_view = "has no open of it";
    }
  }
  if (json) {
    std::cout << j.dump(2) << "\n";
    return Status::OK();
  }
  fmt::print("volume:     {}\n", volume);
  PrintLock(s, now);
  if (!socket.empty()) fmt::print("holder:     skerryd at {}: {}\n", socket, daemon_view);
  return Status::OK();
}

}  // namespace skerry::cli
