// RequestExecutor: runs one validated request against the export's Volume and
// sends its reply.
//
// READ with structured replies asks Volume::Extents first and answers unallocated
// or zero ranges with OFFSET_HOLE chunks, so sparse images stay sparse across
// qemu-img convert and nbdcopy. BLOCK_STATUS reports the same extents as
// base:allocation descriptors. Volume errors become NBD errors (errors.h); only a
// failure to send is returned to the caller.
//
// Thread-safety: Execute may run on many threads at once; each call needs its own
// RequestBuffers and ReplySink.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nbd/buffer.h"
#include "nbd/reply_writer.h"
#include "nbd/request.h"
#include "skerry/status.h"
#include "skerry/volume.h"
#include "util/volume_fast_paths.h"

namespace skerry {
class ThreadPipe;
}

namespace skerry::nbd {

// Reads shorter than this are sent as data without asking for extents: below the
// smallest volume block size a map lookup costs more than the zeros it would save.
inline constexpr uint32_t kSparseReadMinimum = 64 * 1024;
// Reads at least this long go from the store's page cache to the socket by splice, where
// the volume and connection allow it (VolumeFastPaths::Caps::pipe_reads, a plain socket): saving two
// copies outweighs the extra system calls from about here.
inline constexpr uint32_t kSpliceReadMinimum = 64 * 1024;
// The spec's bound on descriptors in one BLOCK_STATUS chunk.
inline constexpr size_t kMaxStatusDescriptors = 1 << 20;
// BLOCK_STATUS looks at no more than this much of the export per request (the
// spec lets the answer be shorter; clients ask again from where it ended). It
// bounds the extents one request can make the volume produce.
inline constexpr uint64_t kMaxStatusRange = 1ull << 30;

// Memory a request may hold while in flight, charged against the connection's
// budget: its payload, or for BLOCK_STATUS the worst-case extent lists (one
// extent per volume block of the smallest size, in Extents and in runs).
uint64_t RequestMemoryCost(const RequestHeader& h);

// A run of the request's range with one allocation state (kState* bits).
struct StatusRun {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t state = 0;
};

// Memory one request needs, kept with the request object and reused.
struct RequestBuffers {
  Buffer data;             // WRITE payload in; READ data out
  std::vector<char> meta;  // chunk headers and descriptors
  std::vector<iovec> iov;
  std::vector<StatusRun> runs;
};

// Turns Volume::Extents output into ordered, merged runs exactly covering
// [start, end): gaps in the extents count as data, overlaps and excess are cut,
// and state is masked with `mask` before merging. Exposed for tests.
void ExtentsToRuns(const std::vector<Extent>& extents, uint64_t start, uint64_t end, uint32_t mask,
                   std::vector<StatusRun>* runs);

class RequestExecutor {
 public:
  // `peer` names the connection in logs.
  // The volume's fast paths are asked for once, here, not on every request.
  RequestExecutor(Volume& volume, const ExportLimits& limits, std::string peer)
      : volume_(volume),
        fast_(FastPathsOf(volume)),
        caps_(fast_ ? fast_->fast_paths() : VolumeFastPaths::Caps{}),
        limits_(limits),
        peer_(std::move(peer)) {}

  // Runs the request and gives its reply to `sink`; the reply's long entries point
  // into `buffers` (see kReplyCopyLimit). REQUIRES: ValidateRequest(header, limits)
  // == 0; for WRITE, buffers.data holds the payload. Returns an error only when the
  // reply could not be sent.
  Status Execute(const RequestHeader& header, RequestBuffers& buffers, ReplySink& sink);

  // READ in two halves, for volumes that read asynchronously (VolumeFastPaths::ReadAsync):
  // StartRead plans the reply and starts the volume's reads without waiting for them;
  // `done` runs once they have all completed, on whatever thread completed the last (it
  // must not block); FinishRead then sends the reply from any thread. `buffers` must stay
  // untouched in between. REQUIRES: header is a valid READ.
  bool async_reads() const { return caps_.async_reads; }
  void StartRead(const RequestHeader& h, RequestBuffers& b, bool structured, Done done);
  Status FinishRead(const RequestHeader& h, RequestBuffers& b, const Status& result, ReplySink& sink);
  // WRITE likewise, where the volume takes it without blocking (VolumeFastPaths::
  // TryWriteAsync: blocks it already owns, no FUA): false, with nothing done, when it must
  // go through Execute instead. REQUIRES: header is a valid WRITE whose payload is in
  // buffers.data.
  bool async_writes() const { return caps_.async_writes; }
  bool TryStartWrite(const RequestHeader& h, RequestBuffers& b, Done done);
  Status FinishWrite(const RequestHeader& h, const Status& result, ReplySink& sink) { return Finish(h, result, sink); }

 private:
  Status Read(const RequestHeader& h, RequestBuffers& b, ReplySink& sink);
  // READ into b.data, then sent from there.
  Status CopiedRead(const RequestHeader& h, RequestBuffers& b, ReplySink& sink);
  // READ through the thread's pipe: the data runs are put into the pipe (failing there
  // still allows an error reply), then spliced into the socket after their headers. A read
  // that does not fit in the pipe is done by CopiedRead instead.
  Status SplicedRead(const RequestHeader& h, RequestBuffers& b, ReplySink& sink, ThreadPipe& pipe);
  // The runs a READ's reply describes, in b.runs (holes as zero runs only for structured
  // replies); PlanRead also sizes b.data for the data.
  void PlanRuns(const RequestHeader& h, RequestBuffers& b, bool structured);
  void PlanRead(const RequestHeader& h, RequestBuffers& b, bool structured);
  // The reply of a READ whose data runs have been read into b.data, or with `pipe_fd`,
  // into that pipe in order.
  Status SendRead(const RequestHeader& h, RequestBuffers& b, ReplySink& sink, int pipe_fd = -1);
  Status BlockStatus(const RequestHeader& h, RequestBuffers& b, ReplySink& sink);
  // Sends success, or the error for a failed volume call.
  Status Finish(const RequestHeader& h, const Status& result, ReplySink& sink);

  Volume& volume_;
  VolumeFastPaths* const fast_;  // null: the volume has none
  const VolumeFastPaths::Caps caps_;
  const ExportLimits limits_;
  const std::string peer_;
};

}  // namespace skerry::nbd
