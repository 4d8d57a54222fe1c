// skerry: the command line for volumes, snapshots and clones (rbd-like names).
//
// Every command prints a one-line "skerry: error: ..." and exits non-zero on failure;
// --json gives machine-readable output wherever a command prints something.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <functional>
#include <iostream>
#include <optional>

#include <unistd.h>

#include "cli/output.h"
#include "daemon/admin_client.h"
#include "cli/store_config.h"
#include "cli/image_transfer.h"
#include "cli/lock_commands.h"
#include "cli/qemu_img.h"
#include "cli/transfer.h"
#include "skerry/check.h"
#include "skerry/object_store.h"
#include "skerry/sync.h"
#include "skerry/version.h"
#include "skerry/volume.h"
#include "util/sizes.h"

namespace skerry::cli {
namespace {

// Exit codes: 0 ok, 1 operation failed, 2 bad usage.
constexpr int kFailed = 1;
constexpr int kUsage = 2;

struct Globals {
  std::string store;
  std::string config;
  bool json = false;
  std::string copy_up = "background";
};

int Fail(const Status& st) {
  fmt::print(stderr, "skerry: error: {}\n", st.message().empty() ? st.ToString() : st.message());
  return st.code() == Code::kInvalidArgument ? kUsage : kFailed;
}

Result<std::unique_ptr<Catalog>> OpenCatalog(const Globals& g) {
  SKERRY_ASSIGN_OR_RETURN(StoreChoice choice, ResolveStore(g.store, g.config));
  auto store = OpenStore(choice.uri);
  if (!store.ok()) return store.status().Prefixed(fmt::format("store {} (from {})", choice.uri, choice.from));
  VolumeOptions options;
  SKERRY_ASSIGN_OR_RETURN(options.copy_up, ParseCopyUpMode(g.copy_up));
  return Catalog::Open(*store, options);
}

Result<uint64_t> SizeArg(const std::string& text, const char* what) {
  auto r = ParseSize(text);
  if (!r.ok()) return r.status().Prefixed(what);
  return r;
}

// Runs `local`; if the volume is open for writing in a skerryd, asks that daemon to do the
// operation on its open volume instead (a consistent snapshot without disconnecting the VM).
// The request carries the volume's id and the lock's owner string: the daemon at the socket
// the lock names acts only if the volume it has open under that name is this one and the
// lock is its own (a synced copy of the store has the same ids).
Status LocalOrDaemon(Catalog& c, const std::string& volume, const std::function<Status()>& local,
                     nlohmann::json request) {
  Status st = local();
  if (st.code() != Code::kBusy) return st;
  auto holder = c.LockHolder(volume);
  if (!holder.ok()) return st;
  std::string socket = admin::AdminSocketOf(holder->owner);
  if (socket.empty()) return st;
  auto info = c.Info(volume);
  if (!info.ok()) return info.status();
  request["volume_id"] = info->id;
  request["lock_owner"] = holder->owner;
  auto answer = admin::Call(socket, request);
  if (!answer.ok()) return answer.status().Prefixed(fmt::format("volume '{}' is open in skerryd", volume));
  return Status::OK();
}

void PrintInfo(const VolumeInfo& v) {
  if (v.snapshot) fmt::print("snapshot:   {}@{}\n", v.name, v.snapshot->name);
  else fmt::print("volume:     {}\n", v.name);
  fmt::print("id:         {}\n", v.id);
  fmt::print("size:       {} ({} bytes)\n", FormatSize(v.size), v.size);
  fmt::print("block size: {}\n", FormatSize(v.block_size));
  if (v.allocated_blocks)
    fmt::print("allocated:  {} blocks ({})\n", *v.allocated_blocks,
               FormatSize(std::min<uint64_t>(*v.allocated_blocks * v.block_size, v.size)));
  fmt::print("created:    {}\n", FormatTime(v.snapshot ? v.snapshot->created_unix_ms : v.created_unix_ms));
  if (!v.parent.empty()) fmt::print("parent:     {}\n", v.parent);
  if (v.snapshot) {
    if (!v.snapshot->children.empty()) {
      std::string kids;
      for (auto& c : v.snapshot->children) kids += (kids.empty() ? "" : ", ") + c;
      fmt::print("clones:     {}\n", kids);
    }
  } else {
    fmt::print("epoch:      {}\n", v.epoch);
    fmt::print("snapshots:  {}\n", v.snapshots.size());
  }
}

int Run(int argc, char** argv) {
  CLI::App app{"skerry: VM disks as maps of blocks over an object store"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (--json, --store) may also follow the command
  app.set_help_all_flag("--help-all", "Show help for every command");
  app.set_version_flag("--version", SKERRY_VERSION_STRING);
  Globals g;
  app.add_option("--store", g.store, "Store URI: dir:PATH, rados:POOL[?conf=PATH&...], mem: (else $SKERRY_STORE, else the config file)");
  app.add_option("--config", g.config, "Config file (default $SKERRY_CONFIG, /etc/skerry/skerry.toml)");
  app.add_flag("--json", g.json, "Print JSON");
  app.add_option("--copy-up", g.copy_up,
                 "How a write into a block shared with a snapshot copies it: background (default), on-demand or off");

  int rc = 0;
  auto with_catalog = [&](auto fn) {
    return [&g, &rc, fn] {
      auto cat = OpenCatalog(g);
      if (!cat.ok()) {
        rc = Fail(cat.status());
        return;
      }
      Status st = fn(**cat);
      if (!st.ok()) rc = Fail(st);
    };
  };

  // create
  std::string name, name2, size_text, block_text = "4M", spec, file;
  bool allow_shrink = false, long_list = false, usage = true;
  auto* create = app.add_subcommand("create", "Create a thin volume");
  create->add_option("NAME", name, "Volume name")->required();
  create->add_option("--size,-s", size_text, "Size, e.g. 10G")->required();
  create->add_option("--block-size", block_text, "Block size, a power of two from 64K to 64M (default 4M)");
  create->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(uint64_t size, SizeArg(size_text, "--size"));
    SKERRY_ASSIGN_OR_RETURN(uint64_t bs, SizeArg(block_text, "--block-size"));
    SKERRY_RETURN_IF_ERROR(ValidateBlockSize(bs));
    return c.Create(name, size, static_cast<uint32_t>(bs));
  }));

  // ls
  auto* ls = app.add_subcommand("ls", "List volumes");
  ls->add_flag("--long,-l", long_list, "Show size, parent and snapshots");
  ls->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(auto vols, c.List(false));
    if (g.json) {
      nlohmann::json j = nlohmann::json::array();
      for (auto& v : vols) j.push_back(long_list ? ToJson(v) : nlohmann::json(v.name));
      std::cout << j.dump(2) << "\n";
    } else if (long_list) {
      fmt::print("{:<24} {:>10} {:>6} {:>5}  {}\n", "NAME", "SIZE", "BLOCK", "SNAPS", "PARENT");
      for (auto& v : vols)
        fmt::print("{:<24} {:>10} {:>6} {:>5}  {}\n", v.name, FormatSize(v.size), FormatSize(v.block_size),
                   v.snapshots.size(), v.parent);
    } else {
      for (auto& v : vols) fmt::print("{}\n", v.name);
    }
    return Status::OK();
  }));

  // info
  auto* info = app.add_subcommand("info", "Show a volume or snapshot");
  info->add_option("SPEC", spec, "NAME or NAME@SNAP")->required();
  info->add_flag("!--no-usage", usage, "Skip counting allocated blocks (reads the whole map)");
  info->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(VolumeInfo v, c.Info(spec, usage));
    if (g.json) std::cout << ToJson(v).dump(2) << "\n";
    else PrintInfo(v);
    return Status::OK();
  }));

  // snap create|ls|rm|rollback
  auto* snap = app.add_subcommand("snap", "Snapshots");
  snap->require_subcommand(1);
  snap->fallthrough();
  auto split = [](const std::string& s, std::string* vol, std::string* sn) -> Status {
    SKERRY_RETURN_IF_ERROR(SplitSpec(s, vol, sn));
    if (sn->empty()) return Status::InvalidArgument(fmt::format("'{}' names no snapshot: use NAME@SNAP", s));
    return Status::OK();
  };
  auto* snap_create = snap->add_subcommand("create", "Take a snapshot: NAME@SNAP");
  snap_create->add_option("SPEC", spec, "NAME@SNAP")->required();
  snap_create->callback(with_catalog([&](Catalog& c) -> Status {
    std::string vol, sn;
    SKERRY_RETURN_IF_ERROR(split(spec, &vol, &sn));
    return LocalOrDaemon(c, vol, [&] { return c.CreateSnapshot(vol, sn); },
                         {{"op", "snap_create"}, {"volume", vol}, {"snap", sn}});
  }));
  auto* snap_ls = snap->add_subcommand("ls", "List the snapshots of a volume");
  snap_ls->add_option("NAME", name, "Volume")->required();
  snap_ls->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(auto snaps, c.ListSnapshots(name));
    if (g.json) {
      nlohmann::json j = nlohmann::json::array();
      for (auto& s : snaps) j.push_back(ToJson(s));
      std::cout << j.dump(2) << "\n";
      return Status::OK();
    }
    fmt::print("{:>5} {:<24} {:>10} {:<20}  {}\n", "ID", "NAME", "SIZE", "CREATED", "CLONES");
    for (auto& s : snaps) {
      std::string kids;
      for (auto& k : s.children) kids += (kids.empty() ? "" : ",") + k;
      fmt::print("{:>5} {:<24} {:>10} {:<20}  {}\n", s.id, s.name, FormatSize(s.size), FormatTime(s.created_unix_ms), kids);
    }
    return Status::OK();
  }));
  auto* snap_rm = snap->add_subcommand("rm", "Remove a snapshot (refused while clones depend on it)");
  snap_rm->add_option("SPEC", spec, "NAME@SNAP")->required();
  snap_rm->callback(with_catalog([&](Catalog& c) -> Status {
    std::string vol, sn;
    SKERRY_RETURN_IF_ERROR(split(spec, &vol, &sn));
    return c.RemoveSnapshot(vol, sn);
  }));
  auto* snap_rb = snap->add_subcommand("rollback", "Return a volume to a snapshot");
  snap_rb->add_option("SPEC", spec, "NAME@SNAP")->required();
  snap_rb->callback(with_catalog([&](Catalog& c) -> Status {
    std::string vol, sn;
    SKERRY_RETURN_IF_ERROR(split(spec, &vol, &sn));
    return c.Rollback(vol, sn);
  }));

  // clone
  auto* clone = app.add_subcommand("clone", "Thin clone of a snapshot: NAME@SNAP NEWNAME");
  clone->add_option("SPEC", spec, "NAME@SNAP")->required();
  clone->add_option("NEWNAME", name2, "Name of the new volume")->required();
  clone->add_option("--size,-s", size_text, "Size of the clone (at least the snapshot's)");
  clone->callback(with_catalog([&](Catalog& c) -> Status {
    std::string vol, sn;
    SKERRY_RETURN_IF_ERROR(split(spec, &vol, &sn));
    std::optional<uint64_t> size;
    if (!size_text.empty()) {
      SKERRY_ASSIGN_OR_RETURN(size, SizeArg(size_text, "--size"));
    }
    return c.Clone(vol, sn, name2, size);
  }));

  // rm
  auto* rm = app.add_subcommand("rm", "Remove a volume and its snapshots");
  rm->add_option("NAME", name, "Volume")->required();
  rm->callback(with_catalog([&](Catalog& c) -> Status { return c.Remove(name); }));

  // resize
  auto* resize = app.add_subcommand("resize", "Change the size of a volume");
  resize->add_option("NAME", name, "Volume")->required();
  resize->add_option("--size,-s", size_text, "New size")->required();
  resize->add_flag("--allow-shrink", allow_shrink, "Allow making it smaller (discards the data past the end)");
  resize->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(uint64_t size, SizeArg(size_text, "--size"));
    return LocalOrDaemon(c, name, [&] { return c.Resize(name, size, allow_shrink); },
                         {{"op", "resize"}, {"volume", name}, {"size", size}, {"allow_shrink", allow_shrink}});
  }));

  // rename
  auto* rename = app.add_subcommand("rename", "Rename a volume");
  rename->add_option("OLD", name, "Current name")->required();
  rename->add_option("NEW", name2, "New name")->required();
  rename->callback(with_catalog([&](Catalog& c) -> Status { return c.Rename(name, name2); }));

  // import / export
  std::string format;
  auto report = [&](const char* verb, const TransferStats& s, const std::string& fmt_name) {
    if (g.json) {
      nlohmann::json j{{"bytes", s.bytes}, {"data_bytes", s.data_bytes}, {"skipped_bytes", s.skipped_bytes},
                       {"seconds", s.seconds}};
      if (!fmt_name.empty()) j["format"] = fmt_name;
      if (!s.backing.empty()) j["backing"] = s.backing;
      std::cout << j.dump(2) << "\n";
    } else {
      // Backing files are read into the volume: name them, it is data from other files.
      std::string what = fmt_name;
      for (const std::string& b : s.backing) what += " over " + b;
      fmt::print(stderr, "{} {}{} in {:.2f} s ({} data, {} zero or holes not stored)\n", verb, FormatSize(s.bytes),
                 what.empty() ? "" : " (" + what + ")", s.seconds, FormatSize(s.data_bytes),
                 FormatSize(s.skipped_bytes));
    }
  };
  auto* import = app.add_subcommand("import", "Create a volume from a disk image: raw, qcow2, vmdk, vhdx or vdi (probed)");
  import->add_option("FILE", file, "Image file, or - for raw data on standard input")->required();
  import->add_option("NAME", name, "New volume")->required();
  import->add_option("--size,-s", size_text, "Volume size (default: the disk's, rounded up to 512)");
  import->add_option("--block-size", block_text, "Block size (default 4M)");
  import->add_option("--format,-f", format, "Read FILE as this format instead of probing it: raw, qcow2, vmdk, vhdx, vdi");
  import->callback(with_catalog([&](Catalog& c) -> Status {
    std::optional<uint64_t> size;
    if (!size_text.empty()) {
      SKERRY_ASSIGN_OR_RETURN(size, SizeArg(size_text, "--size"));
    }
    SKERRY_ASSIGN_OR_RETURN(uint64_t bs, SizeArg(block_text, "--block-size"));
    SKERRY_RETURN_IF_ERROR(ValidateBlockSize(bs));
    if (!format.empty()) SKERRY_RETURN_IF_ERROR(CheckFormatName(format));
    SKERRY_ASSIGN_OR_RETURN(TransferStats s, Import(c, file, name, size, static_cast<uint32_t>(bs), format));
    report("imported", s, s.format);
    return Status::OK();
  }));
  auto* exp = app.add_subcommand("export", "Write a volume or snapshot to a disk image (raw unless FILE ends .qcow2 .vmdk .vhdx .vdi)");
  exp->add_option("SPEC", spec, "NAME or NAME@SNAP")->required();
  exp->add_option("FILE", file, "Output file, or - for raw data on standard output")->required();
  exp->add_option("--format,-f", format, "Image format: raw, qcow2, vmdk, vhdx, vdi (default: from FILE's extension, else raw)");
  exp->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(std::string out_format, ExportFormatFor(file, format));
    TransferStats s;
    if (out_format == "raw") {
      SKERRY_ASSIGN_OR_RETURN(s, Export(c, spec, file));
    } else {
      SKERRY_ASSIGN_OR_RETURN(s, ExportImage(c, spec, file, out_format, isatty(STDERR_FILENO)));
    }
    if (file != "-") report("exported", s, out_format);
    return Status::OK();
  }));

  // check
  bool rehash = false;
  auto* check = app.add_subcommand("check", "Verify the store: checksums, references, leftovers");
  check->add_flag("--rehash", rehash, "Also re-hash content-addressed objects");
  check->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(CheckReport r, CheckStore(c.store(), CheckOptions{rehash}));
    if (g.json) {
      nlohmann::json problems = nlohmann::json::array();
      for (auto& p : r.problems) problems.push_back({{"object", p.object}, {"volume", p.volume}, {"problem", p.problem}});
      std::cout << nlohmann::json{{"ok", r.ok()}, {"volumes", r.volumes}, {"snapshots", r.snapshots},
                                  {"chunks", r.chunks}, {"referenced_objects", r.referenced_objects},
                                  {"problems", problems}, {"unreferenced", r.unreferenced},
                                  {"unreferenced_bytes", r.unreferenced_bytes}}
                       .dump(2)
                << "\n";
    } else {
      fmt::print("checked {} volumes, {} snapshots, {} map chunks, {} referenced objects\n", r.volumes, r.snapshots,
                 r.chunks, r.referenced_objects);
      for (auto& p : r.problems)
        fmt::print("PROBLEM {}{}: {}\n", p.object, p.volume.empty() ? "" : " (" + p.volume + ")", p.problem);
      if (!r.unreferenced.empty())
        fmt::print("{} unreferenced objects ({}), left by interrupted operations or open volumes:\n",
                   r.unreferenced.size(), FormatSize(r.unreferenced_bytes));
      for (auto& o : r.unreferenced) fmt::print("  {}\n", o);
    }
    if (!r.ok()) return Status::Corruption(fmt::format("{} problem{} found", r.problems.size(), r.problems.size() == 1 ? "" : "s"));
    return Status::OK();
  }));

  // sync
  std::string sync_from, sync_to;
  auto* sync = app.add_subcommand("sync", "Copy a whole store to another (e.g. dir: to rados:); resumable");
  sync->add_option("--from", sync_from, "Source store URI")->required();
  sync->add_option("--to", sync_to, "Target store URI")->required();
  sync->callback([&] {
    auto run = [&]() -> Status {
      SKERRY_ASSIGN_OR_RETURN(auto from, OpenStore(sync_from));
      SKERRY_ASSIGN_OR_RETURN(auto to, OpenStore(sync_to));
      std::optional<Progress> progress;
      SyncOptions options;
      options.progress = [&](uint64_t done, uint64_t total) {
        if (!progress) progress.emplace("sync: objects", total, /*bytes=*/false);
        progress->Update(done);
      };
      SKERRY_ASSIGN_OR_RETURN(SyncReport r, SyncStores(*from, *to, options));
      if (progress) progress->Finish();
      if (g.json) {
        std::cout << nlohmann::json{{"objects", r.objects}, {"copied", r.copied}, {"skipped", r.skipped},
                                    {"bytes_copied", r.bytes_copied}}
                         .dump(2)
                  << "\n";
      } else {
        fmt::print("synced {} objects from {} to {}: {} copied ({}), {} already there\n", r.objects, sync_from,
                   sync_to, r.copied, FormatSize(r.bytes_copied), r.skipped);
      }
      return Status::OK();
    };
    if (Status st = run(); !st.ok()) rc = Fail(st);
  });

  std::string offset_text = "0";
  auto* write = app.add_subcommand("write", "Write a file's bytes into a volume at an offset (flushes)");
  write->add_option("NAME", name, "Volume")->required();
  write->add_option("FILE", file, "Input file, or - for standard input")->required();
  write->add_option("--offset,-o", offset_text, "Byte offset in the volume (default 0)");
  write->callback(with_catalog([&](Catalog& c) -> Status {
    SKERRY_ASSIGN_OR_RETURN(uint64_t offset, SizeArg(offset_text, "--offset"));
    SKERRY_ASSIGN_OR_RETURN(TransferStats s, WriteInto(c, name, offset, file));
    if (g.json) report("wrote", s, "");
    return Status::OK();
  }));

  // lock ls|break, status
  auto* lock = app.add_subcommand("lock", "The write lock of a volume: who holds it, breaking a dead holder's");
  lock->require_subcommand(1);
  lock->fallthrough();
  auto* lock_ls = lock->add_subcommand("ls", "Show who holds the write lock and who asks for it");
  lock_ls->add_option("NAME", name, "Volume")->required();
  lock_ls->callback(with_catalog([&](Catalog& c) { return LockList(c, name, g.json); }));
  std::string owner;
  auto* lock_break = lock->add_subcommand(
      "break", "Break the write lock of a holder that is gone, fencing it first where the store can (RADOS)");
  lock_break->add_option("NAME", name, "Volume")->required();
  lock_break->add_option("OWNER", owner, "Only if this owner holds it (as `lock ls` shows); default: whoever does");
  lock_break->callback(with_catalog([&](Catalog& c) { return LockBreak(c, name, owner, g.json); }));
  auto* status = app.add_subcommand("status", "Who writes a volume: the lock, and the holder's daemon's view of it");
  status->add_option("NAME", name, "Volume")->required();
  status->callback(with_catalog([&](Catalog& c) { return VolumeStatus(c, name, g.json); }));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "skerry: error: {}\n", e.what());
    fmt::print(stderr, "Run 'skerry --help' for usage.\n");
    return kUsage;
  }
  return rc;
}

}  // namespace
}  // namespace skerry::cli

int main(int argc, char** argv) {
  // Errors are Status values; an exception from a library (std::filesystem, allocation)
  // that slipped through is still one line and exit 1, never an abort with a core dump.
  try {
    return skerry::cli::Run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "skerry: error: internal: {}\n", e.what());
  } catch (...) {
    fmt::print(stderr, "skerry: error: internal: unknown exception\n");
  }
  return skerry::cli::kFailed;
}
