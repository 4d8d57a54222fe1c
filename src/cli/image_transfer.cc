#include "cli/image_transfer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "cli/interrupt.h"
#include "nbd/export_provider.h"
#include "nbd/server.h"

namespace skerry::cli {
namespace {

// The one export the private server has, whatever the volume is called: nothing in a
// volume's name then needs escaping in the NBD URI.
constexpr const char* kExportName = "disk";

// Serves one already open volume. Every connection gets the same object (the multi-conn
// contract of export_provider.h); the caller closes it after the server has stopped.
class OneVolume final : public nbd::ExportProvider {
 public:
  explicit OneVolume(std::shared_ptr<Volume> volume) : volume_(std::move(volume)) {}
  Result<std::shared_ptr<Volume>> OpenExport(const std::string& name) override {
    if (name != kExportName) return Status::NotFound(fmt::format("no export '{}'", name));
    return volume_;
  }
  void ReleaseExport(const std::string&, const std::shared_ptr<Volume>&) override {}
  Result<ExportInfo> DescribeExport(const std::string& name) override {
    SKERRY_ASSIGN_OR_RETURN(auto v, OpenExport(name));
    return ExportInfo{v->size(), v->read_only()};
  }
  Result<std::vector<std::string>> ListExports() override { return std::vector<std::string>{kExportName}; }

 private:
  std::shared_ptr<Volume> volume_;
};

// An NBD server on a Unix socket in a fresh 0700 directory: only this user reaches it.
class PrivateServer {
 public:
  static Result<std::unique_ptr<PrivateServer>> Start(std::shared_ptr<Volume> volume) {
    QuietLogs();
    // A vanished qemu-img is an error on the connection, not a SIGPIPE that kills us.
    signal(SIGPIPE, SIG_IGN);
    std::unique_ptr<PrivateServer> s(new PrivateServer);
    // A Unix socket path is at most 107 bytes: a long $TMPDIR falls back to /tmp.
    const char* tmp = getenv("TMPDIR");
    std::string base = tmp && *tmp && strlen(tmp) < 60 ? tmp : "/tmp";
    std::string templ = base + "/skerry-nbd.XXXXXX";
    if (!mkdtemp(templ.data())) return Status::FromErrno(errno, "create a directory in " + base);
    s->dir_ = templ;
    nbd::ServerOptions options;
    options.worker_threads = 16;
    options.max_connections = 16;
    SKERRY_ASSIGN_OR_RETURN(s->server_, nbd::Server::Create(std::make_shared<OneVolume>(std::move(volume)), options));
    SKERRY_RETURN_IF_ERROR(s->server_->Listen("unix:" + s->socket()));
    SKERRY_RETURN_IF_ERROR(s->server_->Start());
    return s;
  }
  ~PrivateServer() {
    if (server_) server_->Shutdown();  // answers what is in flight, then every connection ends
    server_.reset();
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  std::string socket() const { return dir_ + "/nbd.sock"; }
  std::string uri() const { return fmt::format("nbd+unix:///{}?socket={}", kExportName, socket()); }

 private:
  PrivateServer() = default;
  // The server logs connections at info level: not for a command's output.
  static void QuietLogs() {
    static bool done = false;
    if (done) return;
    done = true;
    spdlog::set_default_logger(spdlog::stderr_color_mt("skerry"));
    spdlog::set_pattern("skerry: %l: %v");
    spdlog::set_level(spdlog::level::warn);
  }
  std::string dir_;
  std::unique_ptr<nbd::Server> server_;
};

// Bytes of `v` that hold data (neither holes nor known zeros), from its map.
Result<uint64_t> DataBytes(Volume& v) {
  SKERRY_ASSIGN_OR_RETURN(auto extents, v.Extents(0, v.size()));
  uint64_t data = 0;
  for (const Extent& e : extents)
    if (!e.hole && !e.zero) data += e.length;
  return data;
}

}  // namespace

Status FillFromImage(Volume& volume, const std::string& path, const ImageProbe& probe, bool progress,
                     TransferStats* stats) {
  // The volume is shared with the server for the copy; the caller keeps it (and closes it).
  std::shared_ptr<Volume> shared(&volume, [](Volume*) {});
  SKERRY_ASSIGN_OR_RETURN(auto server, PrivateServer::Start(shared));
  // -n: the volume exists; --target-is-zero: it is new, so zero areas need no writes at all;
  // -W: writes may land out of order (nothing reads the volume until the end).
  Status st = RunQemuImg({"convert", "-n", "--target-is-zero", "-W", "-f", probe.format, QemuPath(path), "-O", "raw",
                          server->uri()},
                         "cannot import " + path, progress);
  server.reset();
  SKERRY_RETURN_IF_ERROR(st);
  SKERRY_ASSIGN_OR_RETURN(stats->data_bytes, DataBytes(volume));
  stats->bytes = probe.virtual_size;
  // Of the image's disk, not of the volume (--size may make that larger).
  stats->skipped_bytes = probe.virtual_size - std::min(stats->data_bytes, probe.virtual_size);
  stats->backing = probe.backing;
  return Status::OK();
}

Result<TransferStats> ExportImage(Catalog& catalog, const std::string& spec, const std::string& path,
                                  const std::string& format, bool progress) {
  auto start = std::chrono::steady_clock::now();
  if (path == "-")
    return Status::InvalidArgument(fmt::format("a {} image cannot go to standard output: give a file name", format));
  CatchInterrupts();  // a Ctrl-C removes the temporary file
  OpenOptions ro;
  ro.read_only = true;
  SKERRY_ASSIGN_OR_RETURN(auto opened, catalog.Open(spec, ro));
  std::shared_ptr<Volume> v(std::move(opened));
  SKERRY_ASSIGN_OR_RETURN(ExportTarget target, OpenExportTarget(path));
  // qemu-img creates the image itself at this path (the temporary, or a device in place).
  const std::string out = target.tmp.empty() ? path : target.tmp;
  Status result;
  {
    auto server = PrivateServer::Start(v);
    if (!server.ok()) result = server.status();
    // -f raw: the export is a plain disk, never probed (its guest data could look like a header).
    else result = RunQemuImg({"convert", "-f", "raw", (*server)->uri(), "-O", format, QemuPath(out)},
                             "cannot export to " + path, progress);
  }
  TransferStats stats;
  stats.bytes = v->size();
  auto data = DataBytes(*v);
  if (result.ok()) result = data.status();
  Status closed = v->Close();
  if (result.ok()) result = closed;
  if (result.ok() && !target.tmp.empty()) {
    // qemu-img wrote through its own descriptor, and may have made a new file: sync that one.
    close(target.fd);
    target.fd = open(target.tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (target.fd < 0) result = Status::FromErrno(errno, "open " + target.tmp);
  }
  if (result.ok()) result = FinishExport(target, path);
  if (!result.ok()) {
    AbandonExport(target);
    return result;
  }
  stats.data_bytes = *data;
  stats.skipped_bytes = stats.bytes - stats.data_bytes;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace skerry::cli
