#include "cli/qemu_img.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "cli/interrupt.h"

namespace skerry::cli {
namespace {

struct ToolRun {
  int exit_code = 0;  // 127: qemu-img could not be started
  std::string out, err;
};

// Runs qemu-img; collects its stdout (or sends it to our stderr: `out_to_stderr`) and stderr.
Result<ToolRun> Spawn(const std::vector<std::string>& args, bool out_to_stderr) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]), close(out_pipe[1]);
    return Status::FromErrno(errno, "pipe");
  }
  std::vector<char*> argv;
  std::string tool = "qemu-img";
  argv.push_back(tool.data());
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    Status err = Status::FromErrno(errno, "fork");
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return err;
  }
  if (pid == 0) {
    // The child: our signal handlers do not survive exec; restore the defaults explicitly.
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(sig, SIG_DFL);
    dup2(out_to_stderr ? STDERR_FILENO : out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execvp(argv[0], argv.data());
    const char* msg = errno == ENOENT ? "qemu-img: not found: install qemu-utils\n" : "qemu-img: cannot run it\n";
    (void)!write(STDERR_FILENO, msg, strlen(msg));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ToolRun run;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&run.out, &run.err};
  int open_fds = 2;
  bool killed = false;
  char buf[65536];
  while (open_fds > 0) {
    if (Interrupted() && !killed) {
      kill(pid, SIGTERM);
      killed = true;
    }
    int n = poll(fds, 2, 100);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; n > 0 && i < 2; i++) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        sinks[i]->append(buf, r);
      } else if (r == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  for (pollfd& p : fds)
    if (p.fd >= 0) close(p.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (Interrupted()) return Status::IOError("interrupted");
  return run;
}

// qemu-img's last error line, without its "qemu-img: " prefix.
std::string LastError(const ToolRun& run) {
  std::string text = run.err;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::string line = text.substr(text.find_last_of('\n') == std::string::npos ? 0 : text.find_last_of('\n') + 1);
  if (line.rfind("qemu-img: ", 0) == 0) line = line.substr(10);
  if (line.empty()) line = fmt::format("qemu-img exited with status {}", run.exit_code);
  return line;
}

Result<std::string> Run(const std::vector<std::string>& args, const std::string& what) {
  SKERRY_ASSIGN_OR_RETURN(ToolRun run, Spawn(args, false));
  if (run.exit_code != 0) return Status::IOError(fmt::format("{}: {}", what, LastError(run)));
  return run.out;
}

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && std::equal(tail.rbegin(), tail.rend(), s.rbegin());
}

// A file probed as raw whose first bytes say it is packed: its bytes are not the disk.
std::string PackedKind(const std::string& path) {
  char head[512] = {0};
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  ssize_t n = pread(fd, head, sizeof head, 0);
  close(fd);
  if (n <= 0) return "";
  auto starts = [&](const char* magic, size_t len) { return static_cast<size_t>(n) >= len && memcmp(head, magic, len) == 0; };
  if (starts("\x1f\x8b", 2)) return "gzip-compressed";
  if (starts("\xfd" "7zXZ\0", 6)) return "xz-compressed";
  if (starts("\x28\xb5\x2f\xfd", 4)) return "zstd-compressed";
  if (starts("BZh", 3)) return "bzip2-compressed";
  if (starts("PK\x03\x04", 4)) return "a zip archive";
  if (n >= 262 && memcmp(head + 257, "ustar", 5) == 0) return "a tar archive";
  return "";
}

// Every data extent of a layer that is a local file in a format with metadata must lie
// inside that file: qemu reads past the end of a truncated image as zeros, without error.
Status CheckExtentsInside(const std::string& path, const std::string& format, const nlohmann::json& chain) {
  SKERRY_ASSIGN_OR_RETURN(std::string map_text,
                          Run({"map", "--output=json", "-f", format, QemuPath(path)}, "cannot read " + path));
  nlohmann::json map = nlohmann::json::parse(map_text, nullptr, false);
  if (!map.is_array()) return Status::Corruption(fmt::format("cannot read {}: qemu-img map gave no extent list", path));
  std::vector<int64_t> file_sizes;  // per depth; -1: not checked
  for (const auto& layer : chain) {
    int64_t size = -1;
    std::string file = layer.value("filename", "");
    std::string fmt_name = layer.value("format", "");
    // A vmdk may keep its data in extent files beside the descriptor: offsets are theirs.
    bool split_vmdk = fmt_name == "vmdk" && layer.contains("format-specific") &&
                      layer["format-specific"]["data"].value("extents", nlohmann::json::array()).size() > 1;
    struct stat st {};
    if (fmt_name != "raw" && !split_vmdk && stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode)) size = st.st_size;
    file_sizes.push_back(size);
  }
  for (const auto& e : map) {
    if (!e.contains("offset") || !e.value("data", false)) continue;
    size_t depth = e.value("depth", 0);
    if (depth >= file_sizes.size() || file_sizes[depth] < 0) continue;
    uint64_t end = e["offset"].get<uint64_t>() + e["length"].get<uint64_t>();
    if (end > static_cast<uint64_t>(file_sizes[depth]))
      return Status::Corruption(fmt::format(
          "{} is truncated: the data at {} of the disk lies at byte {} of {}, which has {} bytes", path,
          e["start"].get<uint64_t>(), e["offset"].get<uint64_t>(), chain[depth].value("filename", ""),
          file_sizes[depth]));
  }
  return Status::OK();
}

}  // namespace

const std::vector<std::string>& ImageFormats() {
  static const std::vector<std::string> formats = {"raw", "qcow2", "vmdk", "vhdx", "vdi"};
  return formats;
}

Status CheckFormatName(const std::string& format) {
  const auto& all = ImageFormats();
  if (std::find(all.begin(), all.end(), format) != all.end()) return Status::OK();
  return Status::InvalidArgument(fmt::format("unknown format '{}': use raw, qcow2, vmdk, vhdx or vdi", format));
}

Result<std::string> ExportFormatFor(const std::string& path, const std::string& forced) {
  if (!forced.empty()) {
    SKERRY_RETURN_IF_ERROR(CheckFormatName(forced));
    return forced;
  }
  for (const std::string& f : ImageFormats())
    if (f != "raw" && EndsWith(path, "." + f)) return f;
  return std::string("raw");
}

Result<ImageProbe> ProbeImage(const std::string& path, const std::string& forced) {
  if (!forced.empty()) SKERRY_RETURN_IF_ERROR(CheckFormatName(forced));
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "open " + path);
  std::vector<std::string> args = {"info", "--output=json", "--backing-chain"};
  if (!forced.empty()) args.insert(args.end(), {"-f", forced});
  args.push_back(QemuPath(path));
  SKERRY_ASSIGN_OR_RETURN(std::string text, Run(args, "cannot read " + path));
  nlohmann::json chain = nlohmann::json::parse(text, nullptr, false);
  if (!chain.is_array() || chain.empty() || !chain[0].is_object())
    return Status::Corruption(fmt::format("cannot read {}: qemu-img info gave no image description", path));
  ImageProbe probe;
  probe.format = chain[0].value("format", "");
  probe.virtual_size = chain[0].value("virtual-size", uint64_t{0});
  for (size_t i = 1; i < chain.size(); i++) probe.backing.push_back(chain[i].value("filename", ""));
  if (CheckFormatName(probe.format).ok() == false)
    return Status::NotSupported(fmt::format(
        "{} is a {} image: skerry imports raw, qcow2, vmdk, vhdx and vdi (convert it first: qemu-img convert -O qcow2)",
        path, probe.format));
  if (probe.format == "raw" && forced.empty()) {
    // qemu-img calls anything it does not recognise raw; refuse what is plainly not a disk.
    std::string packed = PackedKind(path);
    if (!packed.empty())
      return Status::NotSupported(fmt::format("{} is {}, not a disk image: unpack it first (or --format raw to store its bytes as they are)", path, packed));
    if (S_ISREG(st.st_mode) && st.st_size % 512 != 0)
      return Status::NotSupported(fmt::format(
          "{} is not a disk image qemu-img knows, and its {} bytes are not whole 512-byte sectors (--format raw to store them as they are)",
          path, st.st_size));
  }
  if (probe.format != "raw") SKERRY_RETURN_IF_ERROR(CheckExtentsInside(path, probe.format, chain));
  return probe;
}

std::string QemuPath(const std::string& path) { return path.starts_with('/') ? path : "./" + path; }

Status RunQemuImg(const std::vector<std::string>& args, const std::string& what, bool progress) {
  std::vector<std::string> full = args;
  if (progress) full.insert(full.begin() + 1, "-p");
  SKERRY_ASSIGN_OR_RETURN(ToolRun run, Spawn(full, progress));
  if (run.exit_code != 0) return Status::IOError(fmt::format("{}: {}", what, LastError(run)));
  return Status::OK();
}

}  // namespace skerry::cli
