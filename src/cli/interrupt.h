// Ctrl-C and SIGTERM during a long command: noted instead of killing the process at once, so
// that an import can remove its half-made volume and an export its temporary file.
#pragma once

namespace skerry::cli {

// From now on SIGINT, SIGTERM and SIGHUP set a flag that Interrupted() reads. Blocking calls
// are not restarted (they fail with EINTR): loops check Interrupted() between steps.
void CatchInterrupts();
bool Interrupted();

}  // namespace skerry::cli
