// The read path of an open volume (open_volume.h): blocking reads, zero-copy reads into a
// pipe, asynchronous reads on a natively asynchronous store, and allocation extents. A read
// lands held writes of a pending copy-up first, and looks at the map again when a concurrent
// trim released the object it was reading.
#include <fmt/format.h>

#include <cstring>

#include "util/fan_in.h"
#include "util/pipe.h"
#include "volume/open_volume.h"

namespace skerry::volume {

template <class FromObject, class FromHole>
Status OpenVolume::ReadBlockVia(uint64_t block, uint64_t off, uint64_t len, FromObject&& from_object,
                                FromHole&& from_hole, int attempt) {
  // Writes held for a deferred copy-up are in no object yet: land them first.
  if (attempt == 0 && copy_ups_ && copy_ups_->any_pending()) SKERRY_RETURN_IF_ERROR(copy_ups_->Finish(block));
  const uint64_t deleted = reaper_.objects_deleted();
  SKERRY_ASSIGN_OR_RETURN(Entry e, map_->Get(block));
  if (e.is_hole()) return from_hole(off, len);
  for (const Piece& p : Pieces(e, block, off, len)) {
    Status st = from_object(p.object, p.off, p.len);
    if (st.ok()) continue;
    if (!st.IsNotFound()) return st.Prefixed(name_);
    // A concurrent trim may have released the object after we looked (and a write may
    // have made one of the same name since): look again, for the rest of the range.
    SKERRY_ASSIGN_OR_RETURN(Entry again, map_->Get(block));
    if ((again == e && reaper_.objects_deleted() == deleted) || attempt > 3)
      return Status::Corruption(fmt::format("{}: map points at missing object {}", name_, p.object));
    return ReadBlockVia(block, p.off, off + len - p.off, from_object, from_hole, attempt + 1);
  }
  return Status::OK();
}

Status OpenVolume::ReadBlock(uint64_t block, uint64_t off, std::span<char> out) {
  return ReadBlockVia(
      block, off, out.size(),
      [&](const std::string& object, uint64_t at, uint64_t n) {
        return store_->ReadBlocking(object, at, out.subspan(at - off, n)).status();
      },
      [&](uint64_t at, uint64_t n) {
        std::memset(out.data() + (at - off), 0, n);
        return Status::OK();
      });
}

Status OpenVolume::Read(uint64_t offset, std::span<char> out) {
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, out.size()));
  return ForEachBlock(offset, out.size(), [&](uint64_t b, uint64_t off, uint64_t n, uint64_t at) {
    return ReadBlock(b, off, out.subspan(at, n));
  });
}

Status OpenVolume::ReadToPipe(uint64_t offset, uint64_t length, int pipe_fd) {
  if (!pipe_reads_) return Status::NotSupported(name_ + ": no zero-copy reads");
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  // The store reports NotFound before it puts anything in the pipe, so looking at the
  // map again after a concurrent trim (ReadBlockVia) never leaves half a block behind.
  return ForEachBlock(offset, length, [&](uint64_t b, uint64_t off, uint64_t n, uint64_t) {
    // Pieces (of a partial block) go into the pipe in order.
    return ReadBlockVia(
        b, off, n, [&](const std::string& object, uint64_t at, uint64_t len) { return store_->ReadToPipe(object, at, len, pipe_fd); },
        [&](uint64_t, uint64_t len) { return PutZerosInPipe(pipe_fd, len).Prefixed(name_); });
  });
}

FanIn* OpenVolume::StartUnderGate(Done done) {
  // Leave the gate before `done` runs: its caller may then close or destroy the volume.
  return FanIn::Start([gate = &gate_, done = std::move(done)](Status st) {
    gate->LeaveShared();
    done(std::move(st));
  });
}

void OpenVolume::ReadBlockAsync(FanIn* op, uint64_t block, uint64_t off, std::span<char> out, int attempt) {
  // attempt 0 runs on the caller's thread; a retry (attempt > 0) runs on the store's
  // completion thread, which must not take copyup_mu_ (a copier may hold it in a map update
  // that waits for the store) and has no need to: a retry follows a trim, which ended any
  // copy-up of the block.
  if (attempt == 0 && copy_ups_ && copy_ups_->any_pending() && copy_ups_->Has(block)) {
    // The block's content is the shared object plus held writes until its copy-up is done:
    // read it the blocking way (which waits for the copy-up, or runs it) on a copier thread.
    // Rare: a block's first moments after its first write since a snapshot or clone.
    return copy_ups_->RunOnCopier([this, op, block, off, out] { op->Finish(ReadBlock(block, off, out)); });
  }
  const uint64_t deleted = reaper_.objects_deleted();  // see ReadBlockVia
  Result<Entry> e = map_->Get(block);
  if (!e.ok()) {
    return op->Finish(e.status());
  }
  if (e->is_hole()) {
    std::memset(out.data(), 0, out.size());
    return op->Finish(Status::OK());
  }
  // One store read per piece (several for a partial block), each finishing one count of `op`:
  // the caller counted one for this block.
  std::vector<Piece> pieces = Pieces(*e, block, off, out.size());
  for (size_t i = 1; i < pieces.size(); i++) op->Add();
  auto seen = std::make_shared<const Entry>(std::move(*e));
  for (Piece& p : pieces) {
    std::span<char> part = out.subspan(p.off - off, p.len);
    store_->Read(p.object, p.off, part,
                 [this, op, block, part, attempt, seen, object = p.object, at = p.off, deleted](Result<size_t> n) {
                   if (n.ok()) return op->Finish(Status::OK());
                   if (!n.status().IsNotFound()) return op->Finish(n.status().Prefixed(name_));
                   // A concurrent trim may have released the object after we looked: look
                   // again. The map's chunk is loaded (we just read it), so this does not wait
                   // for the store.
                   Result<Entry> again = map_->Get(block);
                   if (!again.ok() || (*again == *seen && reaper_.objects_deleted() == deleted) || attempt > 3)
                     return op->Finish(again.ok() ? Status::Corruption(fmt::format("{}: map points at missing object {}",
                                                                                   name_, object))
                                                  : again.status());
                   ReadBlockAsync(op, block, at, part, attempt + 1);
                 });
  }
}

void OpenVolume::ReadAsync(uint64_t offset, std::span<char> out, Done done) {
  if (!async_reads_) return done(Read(offset, out));
  gate_.EnterShared();
  FanIn* op = StartUnderGate(std::move(done));
  Status st = CheckRange(offset, out.size());
  if (st.ok()) {
    st = ForEachBlock(offset, out.size(), [&](uint64_t b, uint64_t off, uint64_t n, uint64_t at) {
      op->Add();
      ReadBlockAsync(op, b, off, out.subspan(at, n), 0);
      return Status::OK();
    });
  }
  op->Finish(std::move(st));  // the starter's count
}

Result<std::vector<Extent>> OpenVolume::Extents(uint64_t offset, uint64_t length) {
  SharedGate gate(gate_);
  SKERRY_RETURN_IF_ERROR(CheckRange(offset, length));
  std::vector<Extent> out;
  Status st = ForEachBlock(offset, length, [&](uint64_t b, uint64_t, uint64_t n, uint64_t at) -> Status {
    SKERRY_ASSIGN_OR_RETURN(Entry e, map_->Get(b));
    bool hole = e.is_hole();
    if (!out.empty() && out.back().hole == hole) {
      out.back().length += n;
    } else {
      out.push_back(Extent{offset + at, n, hole, hole});
    }
    return Status::OK();
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace skerry::volume
