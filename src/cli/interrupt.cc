#include "cli/interrupt.h"

#include <csignal>
#include <initializer_list>

namespace skerry::cli {
namespace {

volatile std::sig_atomic_t interrupted = 0;

// The first signal is noted; a second one ends the process at once, as it would have.
void OnSignal(int sig) {
  interrupted = 1;
  signal(sig, SIG_DFL);
}

}  // namespace

void CatchInterrupts() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

bool Interrupted() { return interrupted != 0; }

}  // namespace skerry::cli
