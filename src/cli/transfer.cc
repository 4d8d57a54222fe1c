#include "cli/transfer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "cli/image_transfer.h"
#include "cli/interrupt.h"
#include "cli/output.h"
#include "cli/qemu_img.h"

namespace skerry::cli {
namespace {

bool AllZero(const char* p, size_t n) {
  // Compare against itself shifted by one word: zero iff the first word is zero and all
  // words equal their neighbour. Fast memcmp instead of a byte loop.
  if (n < 16) {
    for (size_t i = 0; i < n; i++)
      if (p[i]) return false;
    return true;
  }
  uint64_t first;
  std::memcpy(&first, p, 8);
  return first == 0 && std::memcmp(p, p + 8, n - 8) == 0;
}

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Reads exactly n bytes unless EOF; returns bytes read or -errno.
ssize_t ReadFull(int fd, char* buf, size_t n, off_t offset, bool positional) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = positional ? pread(fd, buf + got, n - got, offset + got) : read(fd, buf + got, n - got);
    if (r < 0) {
      if (errno == EINTR && !Interrupted()) continue;
      return -errno;
    }
    if (r == 0) break;
    got += r;
  }
  return static_cast<ssize_t>(got);
}

Status WriteFull(int fd, const char* buf, size_t n, off_t offset, bool positional, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = positional ? pwrite(fd, buf + done, n - done, offset + done) : write(fd, buf + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write " + path);
    }
    done += w;
  }
  return Status::OK();
}

// Imports from a regular file with several workers, each taking the next block; holes in
// the file are skipped without reading them.
Status ImportFile(Volume& v, int fd, const std::string& path, uint64_t file_size, TransferStats* stats) {
  const uint32_t bs = v.block_size();
  const uint64_t blocks = (file_size + bs - 1) / bs;
  std::atomic<uint64_t> next{0}, data{0}, done_bytes{0};
  std::mutex err_mu;
  Status error;
  Progress progress("import", file_size);
  auto worker = [&] {
    std::vector<char> buf(bs);
    for (;;) {
      {
        std::lock_guard l(err_mu);
        if (!error.ok()) return;
      }
      if (Interrupted()) return;
      uint64_t b = next++;
      if (b >= blocks) return;
      uint64_t off = b * bs;
      uint64_t len = std::min<uint64_t>(bs, file_size - off);
      // A block that starts a hole and has no data before its end is skipped unread.
      off_t data_at = lseek(fd, static_cast<off_t>(off), SEEK_DATA);
      Status st;
      if (data_at >= 0 && static_cast<uint64_t>(data_at) < off + len) {
        ssize_t r = ReadFull(fd, buf.data(), len, static_cast<off_t>(off), true);
        if (r < 0) st = Status::FromErrno(static_cast<int>(-r), "read " + path);
        else if (static_cast<uint64_t>(r) != len) st = Status::IOError(path + " shrank while importing");
        else if (!AllZero(buf.data(), len)) {
          st = v.Write(off, std::span<const char>(buf.data(), len));
          data += len;
        }
      } else if (data_at < 0 && errno != ENXIO) {
        st = Status::FromErrno(errno, "seek " + path);
      }
      if (!st.ok()) {
        std::lock_guard l(err_mu);
        if (error.ok()) error = st;
        return;
      }
      progress.Update(done_bytes += len);
    }
  };
  std::vector<std::thread> threads;
  unsigned n = std::max(2u, std::min(4u, std::thread::hardware_concurrency()));
  for (unsigned i = 0; i < n; i++) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  progress.Finish();
  stats->data_bytes = data;
  stats->skipped_bytes = file_size - data;
  return error;
}

// Imports a stream (standard input, a pipe) block by block.
Status ImportStream(Volume& v, int fd, uint64_t limit, TransferStats* stats, uint64_t* read_total) {
  const uint32_t bs = v.block_size();
  std::vector<char> buf(bs);
  Progress progress("import", 0);
  uint64_t off = 0;
  while (!Interrupted()) {
    ssize_t r = ReadFull(fd, buf.data(), bs, 0, false);
    if (r < 0) return Status::FromErrno(static_cast<int>(-r), "read standard input");
    if (r == 0) break;
    if (off + r > limit) return Status::InvalidArgument(fmt::format("input is larger than --size ({} bytes)", limit));
    if (!AllZero(buf.data(), r)) {
      SKERRY_RETURN_IF_ERROR(v.Write(off, std::span<const char>(buf.data(), r)));
      stats->data_bytes += r;
    }
    off += r;
    progress.Update(off);
    if (static_cast<size_t>(r) < bs) break;
  }
  progress.Finish();
  *read_total = off;
  stats->skipped_bytes = off - stats->data_bytes;
  return Status::OK();
}

uint64_t RoundUp512(uint64_t n) { return (n + 511) / 512 * 512; }

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Result<ExportTarget> OpenExportTarget(const std::string& path) {
  ExportTarget t;
  t.dest = path;
  struct stat st {};
  bool exists = stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Status::FromErrno(errno, "open " + path);
  struct stat lst {};
  bool dangling_link = !exists && lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode);
  if ((exists && !S_ISREG(st.st_mode)) || dangling_link) {
    // In place: a device or pipe; or a dangling symlink, whose target does not exist yet
    // (nothing to lose) and which a rename would replace by a plain file.
    t.fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (t.fd < 0) return Status::FromErrno(errno, "open " + path);
    return t;
  }
  if (exists) {
    // Replace the file a symlink points at, not the link.
    char* real = realpath(path.c_str(), nullptr);
    if (!real) return Status::FromErrno(errno, "resolve " + path);
    t.dest = real;
    free(real);
  }
  std::string dir = DirOf(t.dest);
  std::string base = t.dest.substr(t.dest.find_last_of('/') + 1).substr(0, 200);  // stay under NAME_MAX
  std::random_device rd;
  for (int attempt = 0; t.fd < 0; attempt++) {
    t.tmp = fmt::format("{}/.{}.skerry-export.{:08x}", dir, base, rd());
    // O_EXCL: never write into someone else's file; 0644 less the umask, as a new file gets.
    t.fd = open(t.tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (t.fd < 0 && (errno != EEXIST || attempt == 100))
      return Status::FromErrno(errno, "create a temporary file in " + dir + " to export " + path);
  }
  if (exists) {
    // Keep the replaced file's mode, and its owner where we may (root); else it is ours.
    [[maybe_unused]] int owned = fchown(t.fd, st.st_uid, st.st_gid);
    if (fchmod(t.fd, st.st_mode & 07777) != 0) {
      Status err = Status::FromErrno(errno, "chmod " + t.tmp);
      close(t.fd);
      unlink(t.tmp.c_str());
      return err;
    }
  }
  return t;
}

// Syncs and renames a temporary export over its destination, then syncs the directory so
// the rename survives a crash. Writing in place: syncs what can be synced.
Status FinishExport(ExportTarget& t, const std::string& path) {
  struct stat st {};
  fstat(t.fd, &st);
  Status result;
  if (!t.tmp.empty()) {
    if (fdatasync(t.fd) != 0) result = Status::FromErrno(errno, "fsync " + path);
  } else if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && fsync(t.fd) != 0) {
    result = Status::FromErrno(errno, "fsync " + path);
  }
  if (t.owned && close(t.fd) != 0 && result.ok()) result = Status::FromErrno(errno, "close " + path);
  t.fd = -1;
  if (!result.ok() || t.tmp.empty()) return result;
  if (rename(t.tmp.c_str(), t.dest.c_str()) != 0) return Status::FromErrno(errno, "rename over " + t.dest);
  t.tmp.clear();
  int dir = open(DirOf(t.dest).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Status::FromErrno(errno, "open directory of " + t.dest);
  if (fsync(dir) != 0) result = Status::FromErrno(errno, "fsync directory of " + t.dest);
  close(dir);
  return result;
}

// A failed export: the temporary file goes, the file it was to replace stays as it was.
void AbandonExport(ExportTarget& t) {
  if (t.fd >= 0 && t.owned) close(t.fd);
  t.fd = -1;
  if (!t.tmp.empty()) unlink(t.tmp.c_str());
}

namespace {

// Where an import fills its volume: a name of its own, renamed to NAME only once complete,
// so NAME never names a half-imported disk, even after a kill -9 (which leaves the
// NAME.importing-XXXXXX volume for `skerry rm`).
std::string StagingName(const std::string& name) {
  std::random_device rd;
  return fmt::format("{}.importing-{:06x}", name.substr(0, 80), rd() & 0xffffff);
}

Status FillRaw(Volume& v, const std::string& path, int fd, bool regular, uint64_t file_size, TransferStats* stats) {
  uint64_t read_total = file_size;
  Status st = regular ? ImportFile(v, fd, path, file_size, stats) : ImportStream(v, fd, v.size(), stats, &read_total);
  stats->bytes = read_total;
  return st;
}

}  // namespace

Result<TransferStats> Import(Catalog& catalog, const std::string& path, const std::string& name,
                             std::optional<uint64_t> size, uint32_t block_size, const std::string& format) {
  auto start = std::chrono::steady_clock::now();
  SKERRY_RETURN_IF_ERROR(ValidateVolumeName(name).Prefixed("volume"));
  if (catalog.Info(name).ok()) return Status::AlreadyExists(fmt::format("volume '{}' already exists", name));
  bool is_stdin = path == "-";
  // A pipe (standard input, <(...), a FIFO) is read once, in order: raw only, unprobed,
  // since probing would consume what it reads and qemu-img needs to seek in an image.
  struct stat path_st {};
  bool is_stream = is_stdin || (stat(path.c_str(), &path_st) == 0 && (S_ISFIFO(path_st.st_mode) ||
                                                                       S_ISCHR(path_st.st_mode) ||
                                                                       S_ISSOCK(path_st.st_mode)));
  ImageProbe probe;
  probe.format = "raw";
  if (is_stream) {
    if (!format.empty() && format != "raw")
      return Status::InvalidArgument(fmt::format(
          "a pipe is read as raw only: give the {} image as a file (qemu-img needs to seek in it)", format));
  } else {
    SKERRY_ASSIGN_OR_RETURN(probe, ProbeImage(path, format));
  }
  const bool raw = probe.format == "raw";
  int fd = is_stdin ? STDIN_FILENO : raw ? open(path.c_str(), O_RDONLY | O_CLOEXEC) : -1;
  if (raw && fd < 0) return Status::FromErrno(errno, "open " + path);
  struct stat st {};
  if (fd >= 0) fstat(fd, &st);
  bool regular = S_ISREG(st.st_mode);
  auto close_fd = [&] {
    if (!is_stdin && fd >= 0) close(fd);
  };
  // The disk's own size: a raw file's length, a device's or an image's size as qemu-img saw
  // it; a stream's is not known.
  uint64_t disk_size = regular ? static_cast<uint64_t>(st.st_size) : is_stream ? 0 : probe.virtual_size;
  if (!is_stream && size && *size < disk_size) {
    close_fd();
    return Status::InvalidArgument(fmt::format("--size {} is smaller than {} ({} bytes)", *size, path, disk_size));
  }
  if (is_stream && !size) {
    close_fd();
    return Status::InvalidArgument("importing from a pipe needs --size");
  }
  uint64_t vol_size = size.value_or(RoundUp512(disk_size));
  if (vol_size == 0) {
    close_fd();
    return Status::InvalidArgument(path + " is empty");
  }
  CatchInterrupts();  // from here a Ctrl-C removes what was made
  const std::string staging = StagingName(name);
  Status created = catalog.Create(staging, vol_size, block_size);
  if (!created.ok()) {
    close_fd();
    return created;
  }
  TransferStats stats;
  Status result;
  {
    auto v = catalog.Open(staging);
    if (!v.ok()) {
      result = v.status();
    } else {
      result = raw ? FillRaw(**v, path, fd, regular, disk_size, &stats)
                   : FillFromImage(**v, path, probe, isatty(STDERR_FILENO), &stats);
      // Close flushes: the import is durable when we report success.
      Status c = (*v)->Close();
      if (result.ok()) result = c;
    }
  }
  close_fd();
  if (result.ok() && Interrupted()) result = Status::IOError("interrupted");
  if (result.ok()) result = catalog.Rename(staging, name);
  if (!result.ok()) {
    catalog.Remove(staging);  // leave nothing half-made behind
    if (Interrupted()) return Status::IOError(fmt::format("import of {} interrupted: no volume was made", path));
    return result;
  }
  stats.seconds = Since(start);
  stats.format = probe.format;
  return stats;
}

Result<TransferStats> WriteInto(Catalog& catalog, const std::string& name, uint64_t offset,
                                const std::string& path) {
  auto start = std::chrono::steady_clock::now();
  bool is_stdin = path == "-";
  int fd = is_stdin ? STDIN_FILENO : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  auto v = catalog.Open(name);
  if (!v.ok()) {
    if (!is_stdin) close(fd);
    return v.status();
  }
  // A file's length is known: refuse before writing anything rather than part-way.
  struct stat st {};
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (offset > (*v)->size() || static_cast<uint64_t>(st.st_size) > (*v)->size() - offset)) {
    if (!is_stdin) close(fd);
    return Status::InvalidArgument(fmt::format("{}: {} bytes at offset {} run past the end of {} ({} bytes)", path,
                                               st.st_size, offset, name, (*v)->size()));
  }
  TransferStats stats;
  Status result;
  std::vector<char> buf((*v)->block_size());
  for (uint64_t off = offset;;) {
    ssize_t r = ReadFull(fd, buf.data(), buf.size(), 0, false);
    if (r < 0) {
      result = Status::FromErrno(static_cast<int>(-r), "read " + path);
      break;
    }
    if (r == 0) break;
    // A stream's length is known only at its end, when the blocks before are written:
    // refusing it whole would mean spooling up to the volume's size of input. So, as dd
    // onto a disk, what fits up to the end is written, and the error says how much.
    uint64_t room = off < (*v)->size() ? (*v)->size() - off : 0;
    if (static_cast<uint64_t>(r) > room) {
      if (room > 0) result = (*v)->Write(off, std::span<const char>(buf.data(), room));
      if (!result.ok()) break;
      uint64_t written = off + room - offset;
      result = Status::InvalidArgument(fmt::format(
          "{}: input runs past the end of {} ({} bytes): {}", path, name, (*v)->size(),
          written == 0 ? std::string("nothing was written")
                       : fmt::format("the first {} bytes of the input were written, up to the end; the rest was not",
                                     written)));
      break;
    }
    result = (*v)->Write(off, std::span<const char>(buf.data(), r));
    if (!result.ok()) break;
    off += r;
    stats.bytes += r;
    stats.data_bytes += r;
  }
  if (!is_stdin) close(fd);
  Status c = (*v)->Close();
  if (!result.ok()) return result;
  if (!c.ok()) return c;
  stats.seconds = Since(start);
  return stats;
}

Result<TransferStats> Export(Catalog& catalog, const std::string& spec, const std::string& path) {
  auto start = std::chrono::steady_clock::now();
  OpenOptions ro;
  ro.read_only = true;
  SKERRY_ASSIGN_OR_RETURN(auto v, catalog.Open(spec, ro));
  ExportTarget target;
  target.fd = STDOUT_FILENO;
  target.owned = false;
  if (path != "-") {
    SKERRY_ASSIGN_OR_RETURN(target, OpenExportTarget(path));
  }
  const int fd = target.fd;
  struct stat st {};
  fstat(fd, &st);
  bool sparse = S_ISREG(st.st_mode);  // a file can keep holes; a pipe or device gets every byte
  const uint64_t size = v->size();
  const uint32_t bs = v->block_size();
  TransferStats stats;
  stats.bytes = size;
  Status result;
  if (sparse && ftruncate(fd, static_cast<off_t>(size)) != 0) result = Status::FromErrno(errno, "truncate " + path);
  std::vector<char> buf(bs);
  Progress progress("export", size);
  auto extents = v->Extents(0, size);
  if (!extents.ok()) result = extents.status();
  for (size_t i = 0; result.ok() && i < extents->size(); i++) {
    const Extent& e = (*extents)[i];
    for (uint64_t off = e.offset; result.ok() && off < e.offset + e.length;) {
      uint64_t len = std::min<uint64_t>(bs - off % bs, e.offset + e.length - off);
      if (e.hole || e.zero) {
        std::memset(buf.data(), 0, len);
      } else {
        result = v->Read(off, std::span<char>(buf.data(), len));
        if (!result.ok()) break;
      }
      bool zero = (e.hole || e.zero) || AllZero(buf.data(), len);
      if (!(sparse && zero)) {
        result = WriteFull(fd, buf.data(), len, static_cast<off_t>(off), sparse, path);
        if (!zero) stats.data_bytes += len;
      }
      off += len;
      progress.Update(off);
    }
  }
  progress.Finish();
  if (result.ok()) result = FinishExport(target, path);
  if (!result.ok()) {
    AbandonExport(target);
    return result;
  }
  stats.skipped_bytes = size - stats.data_bytes;
  stats.seconds = Since(start);
  return stats;
}

}  // namespace skerry::cli
