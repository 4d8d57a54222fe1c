// DaemonIdentity: who this skerryd is in the write locks it takes, and the proof that an
// earlier skerryd on this host is dead, so that a restart takes back that one's volumes at
// once instead of waiting out their leases (every VM on the host would get I/O errors).
//
// The proof is a lock, never a guess from process ids: the daemon holds an flock on its state
// file for as long as it runs, and the kernel drops it when the process dies however it dies
// (kill -9, OOM). The file lists the random tokens of the instances that held it, and each
// instance's lock owner string carries its token:
//
//   skerryd@HOST:PID token=TOKEN admin=ADMIN_SOCKET
//
// Holding the flock, a daemon knows every token in the file belongs to a dead instance. Two
// containers that share a host name and a path but not the file have different tokens, so
// neither ever mistakes the other for its predecessor. Keep the file on a local filesystem
// (flock over NFS is emulated with byte-range locks, which a partitioned client may lose).
//
// Thread-safety: const methods may be called from any thread.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "skerry/status.h"
#include "util/unique_fd.h"

namespace skerry::daemon {

class DaemonIdentity {
 public:
  // Locks `state_file` (creating it and its directory if needed); Busy when
  // a running skerryd holds it. Records this instance's token in it.
  static Result<std::unique_ptr<DaemonIdentity>> Acquire(const std::string& state_file,
                                                         const std::string& admin_socket);

  // This instance's lock owner string.
  const std::string& owner() const { return owner_; }
  // Whether `owner` is the lock owner of an earlier instance that used this state file: that
  // instance is dead, since this one holds the file's lock.
  bool IsPredecessor(const std::string& owner) const;
  size_t predecessors() const { return predecessors_.size(); }

 private:
  DaemonIdentity() = default;

  UniqueFd fd_;  // holds the flock
  std::string owner_;
  std::set<std::string> predecessors_;  // tokens
};

// The token in a lock owner string ("... token=T ..."); empty when it has none.
std::string OwnerToken(const std::string& owner);

}  // namespace skerry::daemon
