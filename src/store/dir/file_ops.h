// Small POSIX file helpers of the dir store, over util's UniqueFd: full reads and writes,
// directory fsync, hole-preserving in-kernel copy, and zeroing a range.
//
// Every failure becomes a Status through Status::FromErrno, with the path (or what was
// being done) as context. These are plain functions over fds and paths; they are safe
// to call from any thread as long as callers do not race on the same fd's offset
// (they only use positioned I/O).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "skerry/status.h"
#include "util/unique_fd.h"

namespace skerry::dirstore {

// open(2) with O_CLOEXEC added; NotFound etc. via FromErrno("open PATH").
Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode = 0644);

// Reads up to out.size() bytes at `offset`, stopping early only at end of file.
// Returns the number of bytes read.
Result<size_t> ReadAt(int fd, uint64_t offset, std::span<char> out, std::string_view what);
// Puts `length` bytes of the file at `offset` into the pipe `pipe_fd` with splice (the
// pipe takes references to page-cache pages); past end of file, zeros. Busy when the
// pipe fills up before that (the caller promised room).
Status SpliceToPipe(int fd, uint64_t offset, uint64_t length, int pipe_fd, std::string_view what);
// Writes all of `data` at `offset` (retrying short writes). With `max_piece` > 0, in
// pwrite calls of at most that many bytes, each ending on a multiple of it: the page
// cache sizes a folio by the write that creates it (see DirStoreOptions::write_piece).
Status WriteAt(int fd, uint64_t offset, std::span<const char> data, std::string_view what,
               size_t max_piece = 0);
// Whether the file system holding `fd` is ext4 (false when unknown).
bool IsExt4(int fd);
// The whole file from offset 0.
Result<std::string> ReadWhole(int fd, std::string_view what);
// Size from fstat.
Result<uint64_t> FileSize(int fd, std::string_view what);

// fsync of a directory, making entries created, renamed or removed in it durable.
Status SyncDir(const std::string& dir);

// How CopyData moved the bytes.
enum class CopyMethod { kReflink, kCopyFileRange, kSendfile };

// Makes `dst` (an empty file) a copy of the first `size` bytes of `src` without the
// data passing through user space: a reflink (FICLONE) when `try_reflink`, else
// copy_file_range (sendfile when that is unsupported) of the data ranges only
// (SEEK_DATA/SEEK_HOLE), then ftruncate to `size`, so holes stay holes.
Result<CopyMethod> CopyData(int src, int dst, uint64_t size, bool try_reflink, std::string_view what);

// Makes [offset, offset+length) of `fd` read as zeros: punches a hole where the file
// system can, else FALLOC_FL_ZERO_RANGE, else writes zeros. Extends the file to
// offset+length when that is past its end.
Status ZeroRange(int fd, uint64_t offset, uint64_t length, std::string_view what);

// Whether FICLONE works between two files in `dir` (creates and removes two probes).
bool ReflinkWorks(const std::string& dir);

}  // namespace skerry::dirstore
