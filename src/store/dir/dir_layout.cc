#include "store/dir/dir_layout.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>

#include "store/dir/file_ops.h"
#include "util/crc32c.h"

namespace skerry::dirstore {
namespace {

constexpr std::string_view kMarkerTitle = "skerry dir store\n";
// Prefix of the temporary a process writes the marker to before linking it into place;
// a directory holding only these is still "empty" (another process is initialising it).
constexpr std::string_view kMarkerTempPrefix = ".skerry-store.";

std::string MarkerText() {
  return std::string(kMarkerTitle) + "format " + std::to_string(DirLayout::kFormatVersion) + "\n";
}

Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return Status::OK();
  return Status::FromErrno(errno, "mkdir " + path);
}

// mkdir -p that makes each directory it creates durable in its parent.
Status MakeDirs(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string parent = slash == 0 ? "/" : path.substr(0, slash);
  struct stat st;
  if (stat(parent.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::FromErrno(errno, "stat " + parent);
    SKERRY_RETURN_IF_ERROR(MakeDirs(parent));
  }
  SKERRY_RETURN_IF_ERROR(MakeDir(path));
  return SyncDir(parent);
}

// Whether `dir` holds anything but ".", "..", marker temporaries, and the lost+found
// of a file system made just for the store (its mount point is a natural root).
Result<bool> HasForeignEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return Status::FromErrno(errno, "open directory " + dir);
  bool foreign = false;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == ".." || n == "lost+found" || n.starts_with(kMarkerTempPrefix)) continue;
    foreign = true;
    break;
  }
  closedir(d);
  return foreign;
}

Status CheckMarker(const std::string& path, std::string_view text) {
  std::string_view rest = text;
  if (!rest.starts_with(kMarkerTitle)) {
    return Status::Corruption(path + " does not start with '" +
                              std::string(kMarkerTitle.substr(0, kMarkerTitle.size() - 1)) + "'");
  }
  rest.remove_prefix(kMarkerTitle.size());
  int version = 0;
  if (std::sscanf(std::string(rest).c_str(), "format %d", &version) != 1 || version <= 0) {
    return Status::Corruption(path + " has no valid 'format N' line");
  }
  if (version != DirLayout::kFormatVersion) {
    return Status::NotSupported(path + " is format " + std::to_string(version) +
                                "; this skerry reads format " +
                                std::to_string(DirLayout::kFormatVersion));
  }
  return Status::OK();
}

}  // namespace

Result<DirLayout> DirLayout::Prepare(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  DirLayout layout(std::move(root));
  const std::string& r = layout.root_;
  struct stat st;
  if (stat(r.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(r + " exists and is not a directory");
  } else if (errno == ENOENT) {
    SKERRY_RETURN_IF_ERROR(MakeDirs(r));
  } else {
    return Status::FromErrno(errno, "stat " + r);
  }
  SKERRY_RETURN_IF_ERROR(layout.CheckOrWriteMarker());
  SKERRY_RETURN_IF_ERROR(layout.MakeTree());
  return layout;
}

uint32_t DirLayout::ShardOf(std::string_view name) { return Crc32c(name) & (kShards - 1); }

std::string DirLayout::ShardDir(uint32_t shard) const {
  char hex[3];
  std::snprintf(hex, sizeof hex, "%02x", shard);
  return objects_dir() + "/" + hex;
}

std::string DirLayout::ObjectPath(std::string_view name) const {
  std::string path = ShardDir(ShardOf(name));
  path += '/';
  path += name;
  return path;
}

Status DirLayout::CheckOrWriteMarker() const {
  const std::string marker = root_ + "/" + kMarkerName;
  for (int attempt = 0; attempt < 2; attempt++) {
    auto fd = OpenFile(marker, O_RDONLY);
    if (fd.ok()) {
      SKERRY_ASSIGN_OR_RETURN(std::string text, ReadWhole(fd->get(), marker));
      return CheckMarker(marker, text);
    }
    if (!fd.status().IsNotFound()) return fd.status();

    SKERRY_ASSIGN_OR_RETURN(bool foreign, HasForeignEntries(root_));
    // What looks foreign may be the tree of a process that initialised the store since we
    // looked for the marker (it links the marker before it makes anything else): read it.
    if (foreign && attempt == 0 && access(marker.c_str(), F_OK) == 0) continue;
    if (foreign) {
      return Status::InvalidArgument(
          "directory " + root_ + " is not empty and is not a skerry store (it has no " +
          kMarkerName + " file); refusing to use it: give an empty or new directory");
    }
    // Write the marker to a temporary and link it into place: of several processes
    // initialising at once, one wins and the others read its marker.
    std::string tmp = root_ + "/" + std::string(kMarkerTempPrefix) + std::to_string(getpid()) +
                      "." + std::to_string(std::random_device{}()) + ".tmp";
    {
      SKERRY_ASSIGN_OR_RETURN(UniqueFd out, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644));
      Status st = WriteAt(out.get(), 0, MarkerText(), tmp);
      if (st.ok() && fsync(out.get()) != 0) st = Status::FromErrno(errno, "fsync " + tmp);
      if (!st.ok()) {
        unlink(tmp.c_str());
        return st;
      }
    }
    int rc = link(tmp.c_str(), marker.c_str());
    int err = errno;
    unlink(tmp.c_str());
    if (rc != 0 && err != EEXIST) return Status::FromErrno(err, "link " + marker);
    SKERRY_RETURN_IF_ERROR(SyncDir(root_));
  }
  return Status::IOError(marker + " vanished while the store was being opened");
}

Status DirLayout::MakeTree() const {
  SKERRY_RETURN_IF_ERROR(MakeDir(objects_dir()));
  SKERRY_RETURN_IF_ERROR(MakeDir(tmp_dir()));
  SKERRY_RETURN_IF_ERROR(MakeDir(root_ + "/locks"));
  for (uint32_t shard = 0; shard < kShards; shard++) {
    SKERRY_RETURN_IF_ERROR(MakeDir(ShardDir(shard)));
  }
  {
    SKERRY_ASSIGN_OR_RETURN(UniqueFd lock, OpenFile(cas_lock_file(), O_RDWR | O_CREAT, 0644));
  }
  SKERRY_RETURN_IF_ERROR(SyncDir(objects_dir()));
  SKERRY_RETURN_IF_ERROR(SyncDir(root_ + "/locks"));
  return SyncDir(root_);
}

}  // namespace skerry::dirstore
