// nbd_test_server: serves in-memory volumes over NBD for the interoperability
// tests (qemu-img, qemu-io, nbdinfo, nbdcopy, nbdsh, fio) and for benchmarks.
//
//   nbd_test_server --listen unix:/tmp/s.sock [--listen tcp:127.0.0.1:0]
//       --export NAME:SIZE[:ro][:fill=BYTE][:block=SIZE][:fault=OFFSET]
//       [--tls off|optional|required] [--tls-cert F --tls-key F] [--tls-client-ca F]
//       [--tls-psk F] [--workers N] [--ready-file F] [--stats-file F] [--verbose]
//
// fill=BYTE fills the first half of the volume with BYTE and leaves the second
// half a hole; fault=OFFSET makes I/O touching the 4 KiB at OFFSET fail with EIO.
// Once listening it writes its addresses to --ready-file; on SIGTERM or SIGINT it
// shuts down gracefully and writes "opens=N releases=N" to --stats-file.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "mem_export_provider.h"
#include "mem_volume.h"
#include "nbd/server.h"
#include "nbd/tls.h"
#include "util/sizes.h"

using skerry::nbd::testing::MemExportProvider;
using skerry::nbd::testing::MemVolume;

namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::cerr << "nbd_test_server: " << msg << "\n";
  std::exit(2);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) return parts;
    start = pos + 1;
  }
}

uint64_t SizeOrDie(const std::string& text) {
  auto size = skerry::ParseSize(text);
  if (!size.ok()) Die(size.status().ToString());
  return *size;
}

std::shared_ptr<MemVolume> ParseExport(const std::string& spec) {
  std::vector<std::string> parts = Split(spec, ':');
  if (parts.size() < 2) Die("--export NAME:SIZE[:ro][:fill=BYTE][:block=SIZE][:fault=OFFSET]");
  bool ro = false;
  int fill = -1;
  uint32_t block = 64 * 1024;
  int64_t fault = -1;
  for (size_t i = 2; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p == "ro") {
      ro = true;
    } else if (p.starts_with("fill=")) {
      fill = static_cast<int>(std::stoul(p.substr(5), nullptr, 0));
    } else if (p.starts_with("block=")) {
      block = static_cast<uint32_t>(SizeOrDie(p.substr(6)));
    } else if (p.starts_with("fault=")) {
      fault = static_cast<int64_t>(SizeOrDie(p.substr(6)));
    } else {
      Die("unknown export option '" + p + "'");
    }
  }
  auto volume = std::make_shared<MemVolume>(parts[0], SizeOrDie(parts[1]), block, ro);
  if (fill >= 0) volume->Fill(0, volume->size() / 2, static_cast<char>(fill));
  if (fault >= 0) {
    volume->InjectFault(static_cast<uint64_t>(fault), 4096,
                        skerry::Status::IOError("injected fault"));
  }
  return volume;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> listen;
  std::string ready_file, stats_file;
  skerry::nbd::ServerOptions options;
  auto provider = std::make_shared<MemExportProvider>();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--listen") {
      listen.push_back(value());
    } else if (arg == "--export") {
      provider->Add(ParseExport(value()));
    } else if (arg == "--tls") {
      auto mode = skerry::nbd::ParseTlsMode(value());
      if (!mode.ok()) Die(mode.status().ToString());
      options.tls.mode = *mode;
    } else if (arg == "--tls-cert") {
      options.tls.cert_file = value();
    } else if (arg == "--tls-key") {
      options.tls.key_file = value();
    } else if (arg == "--tls-client-ca") {
      options.tls.client_ca_file = value();
    } else if (arg == "--tls-psk") {
      options.tls.psk_file = value();
    } else if (arg == "--workers") {
      options.worker_threads = std::stoul(value());
    } else if (arg == "--ready-file") {
      ready_file = value();
    } else if (arg == "--stats-file") {
      stats_file = value();
    } else if (arg == "--verbose") {
      spdlog::set_level(spdlog::level::debug);
    } else if (arg == "--quiet") {
      spdlog::set_level(spdlog::level::warn);
    } else {
      Die("unknown argument " + arg);
    }
  }
  if (listen.empty()) Die("nothing to listen on (--listen unix:PATH or tcp:HOST:PORT)");

  // Every thread inherits this mask; the main thread takes the signals with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = skerry::nbd::Server::Create(provider, options);
  if (!server.ok()) Die(server.status().ToString());
  for (const std::string& address : listen) {
    skerry::Status st = (*server)->Listen(address);
    if (!st.ok()) Die(st.ToString());
  }
  skerry::Status st = (*server)->Start();
  if (!st.ok()) Die(st.ToString());
  if (!ready_file.empty()) {
    // Written to a temporary name and renamed, so a test polling for the file
    // never reads half of it.
    std::string tmp = ready_file + ".tmp";
    {
      std::ofstream out(tmp);
      for (const std::string& a : (*server)->addresses()) out << a << "\n";
    }
    std::rename(tmp.c_str(), ready_file.c_str());
  }

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("nbd_test_server: signal {}, shutting down", sig);
  (*server)->Shutdown();
  if (!stats_file.empty()) {
    std::ofstream out(stats_file);
    out << "opens=" << provider->opens() << " releases=" << provider->releases() << "\n";
  }
  return 0;
}
