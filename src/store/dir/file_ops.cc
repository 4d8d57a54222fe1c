#include "store/dir/file_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <random>

#include "util/pipe.h"

namespace skerry::dirstore {
namespace {

std::string Context(std::string_view op, std::string_view what) {
  std::string s(op);
  s += ' ';
  s += what;
  return s;
}

Status Errno(std::string_view op, std::string_view what) {
  return Status::FromErrno(errno, Context(op, what));
}

// errno values meaning "this file system (or kernel) cannot do that here", after which
// a slower way that does the same job is tried.
bool Unsupported(int err) {
  return err == EOPNOTSUPP || err == ENOTSUP || err == ENOSYS || err == EXDEV || err == EINVAL ||
         err == ENOTTY;
}

// Moves [offset, end) from src to dst at the same offsets, in kernel space.
Status CopyRange(int src, int dst, uint64_t offset, uint64_t end, CopyMethod* method,
                 std::string_view what) {
  while (offset < end) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(end - offset, 1u << 30));
    ssize_t n;
    if (*method == CopyMethod::kCopyFileRange) {
      loff_t in = static_cast<loff_t>(offset), out = static_cast<loff_t>(offset);
      n = copy_file_range(src, &in, dst, &out, want, 0);
      if (n < 0 && Unsupported(errno)) {
        *method = CopyMethod::kSendfile;
        continue;
      }
    } else {
      // sendfile writes at dst's file position; dst is a private temporary.
      if (lseek(dst, static_cast<off_t>(offset), SEEK_SET) < 0) return Errno("lseek", what);
      off_t in = static_cast<off_t>(offset);
      n = sendfile(dst, src, &in, want);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("copy", what);
    }
    if (n == 0) break;  // src shrank under us; the rest reads as zeros
    offset += static_cast<uint64_t>(n);
  }
  return Status::OK();
}

}  // namespace

Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Errno("open", path);
  return UniqueFd(fd);
}

Result<size_t> ReadAt(int fd, uint64_t offset, std::span<char> out, std::string_view what) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("read", what);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status SpliceToPipe(int fd, uint64_t offset, uint64_t length, int pipe_fd, std::string_view what) {
  while (length > 0) {
    loff_t at = static_cast<loff_t>(offset);
    size_t want = static_cast<size_t>(std::min<uint64_t>(length, 1u << 30));
    // SPLICE_F_NONBLOCK: a full pipe fails rather than waits (nobody else drains it).
    ssize_t n = splice(fd, &at, pipe_fd, nullptr, want, SPLICE_F_NONBLOCK);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return Status::Busy(Context("splice: pipe full reading", what));
      return Errno("splice", what);
    }
    if (n == 0) return PutZerosInPipe(pipe_fd, length);  // end of file: the rest reads as zeros
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
  return Status::OK();
}

Status WriteAt(int fd, uint64_t offset, std::span<const char> data, std::string_view what,
               size_t max_piece) {
  size_t done = 0;
  while (done < data.size()) {
    size_t want = data.size() - done;
    if (max_piece > 0) want = std::min<uint64_t>(want, max_piece - (offset + done) % max_piece);
    ssize_t n = pwrite(fd, data.data() + done, want, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", what);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

bool IsExt4(int fd) {
  struct statfs fs;
  return fstatfs(fd, &fs) == 0 && fs.f_type == EXT4_SUPER_MAGIC;
}

Result<uint64_t> FileSize(int fd, std::string_view what) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Errno("stat", what);
  return static_cast<uint64_t>(st.st_size);
}

Result<std::string> ReadWhole(int fd, std::string_view what) {
  SKERRY_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd, what));
  std::string data(size, '\0');
  SKERRY_ASSIGN_OR_RETURN(size_t n, ReadAt(fd, 0, data, what));
  data.resize(n);  // it may have shrunk since fstat; a Put replaces files, never shrinks them
  return data;
}

Status SyncDir(const std::string& dir) {
  SKERRY_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  if (fsync(fd.get()) != 0) return Errno("fsync", dir);
  return Status::OK();
}

Result<CopyMethod> CopyData(int src, int dst, uint64_t size, bool try_reflink, std::string_view what) {
  if (try_reflink) {
    if (ioctl(dst, FICLONE, src) == 0) return CopyMethod::kReflink;
    if (!Unsupported(errno)) return Errno("reflink", what);
  }
  CopyMethod method = CopyMethod::kCopyFileRange;
  uint64_t offset = 0;
  while (offset < size) {
    off_t data = lseek(src, static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return Errno("seek data in", what);
    }
    if (static_cast<uint64_t>(data) >= size) break;
    off_t hole = lseek(src, data, SEEK_HOLE);
    if (hole < 0) return Errno("seek hole in", what);
    uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    SKERRY_RETURN_IF_ERROR(CopyRange(src, dst, static_cast<uint64_t>(data), end, &method, what));
    offset = end;
  }
  if (ftruncate(dst, static_cast<off_t>(size)) != 0) return Errno("truncate", what);
  return method;
}

Status ZeroRange(int fd, uint64_t offset, uint64_t length, std::string_view what) {
  if (length == 0) return Status::OK();
  uint64_t end = offset + length;
  SKERRY_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd, what));
  // Extend by writing the last byte rather than ftruncate: a truncate could cut off
  // a concurrent write that landed past `end` meanwhile; a one-byte write never shrinks.
  if (end > size) {
    SKERRY_RETURN_IF_ERROR(WriteAt(fd, end - 1, std::span<const char>("", 1), what));
  }
  const off_t off = static_cast<off_t>(offset), len = static_cast<off_t>(length);
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0) return Status::OK();
  if (!Unsupported(errno)) return Errno("punch hole in", what);
  if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len) == 0) return Status::OK();
  if (!Unsupported(errno)) return Errno("zero range in", what);
  static const std::array<char, 64 * 1024> kZeros{};
  for (uint64_t pos = offset; pos < end;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(end - pos, kZeros.size()));
    SKERRY_RETURN_IF_ERROR(WriteAt(fd, pos, std::span<const char>(kZeros.data(), n), what));
    pos += n;
  }
  return Status::OK();
}

bool ReflinkWorks(const std::string& dir) {
  std::string base = dir + "/.reflink-probe-" + std::to_string(getpid()) + "-" +
                     std::to_string(std::random_device{}());
  bool works = false;
  {
    auto a = OpenFile(base + ".a", O_RDWR | O_CREAT | O_EXCL, 0600);
    auto b = OpenFile(base + ".b", O_RDWR | O_CREAT | O_EXCL, 0600);
    static const std::array<char, 4096> kBlock{};
    if (a.ok() && b.ok() && WriteAt(a->get(), 0, kBlock, "reflink probe").ok()) {
      works = ioctl(b->get(), FICLONE, a->get()) == 0;
    }
  }
  unlink((base + ".a").c_str());
  unlink((base + ".b").c_str());
  return works;
}

}  // namespace skerry::dirstore
