// store_io_bench: the measurement behind DirStore's data-path model (docs/stores.md).
//
// Compares, for page-cache-hot random 4 KiB reads and writes on one file:
//   pread   - pread/pwrite inline on the caller's thread (what DirStore does);
//   uring   - io_uring with one shared ring, submitters serialised by a mutex and one
//             reaper thread running a std::function completion per request (the
//             alternative model), at queue depth 1 and 32;
//   DirStore - the real store through the ObjectStore interface (64 objects of 4 MiB),
//             to see what the fd cache, checks and callbacks add to the raw syscalls.
// Usage: store_io_bench [DIR] [SECONDS_PER_CASE]. Not a test; built on demand.
//
// Two more measurements (docs/stores.md has the figures):
//   store_io_bench sync DIR [N...] [--runs=R] [--modes=serial,default,uringD,threadsD]
//       DirStore::Sync of N freshly written objects, one after the other or D in flight;
//   store_io_bench rewrite DIR [SECONDS] [4k|1m|1m-dirty|1m-evicted|copy|sparse|fallocate...]
//       random 4 KiB pwrite into a 256 MiB file filled in different ways (ext4's cost of
//       small writes into large folios).
#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/dir/dir_store.h"
#include "store/dir/file_ops.h"

namespace {

constexpr size_t kFileSize = 256u << 20;
constexpr size_t kIo = 4096;
using Clock = std::chrono::steady_clock;

// Runs `fn(thread_index, stop)` on `threads` threads for `secs` seconds; returns ops/s
// from the per-thread counts fn returns.
double RunThreads(int threads, double secs, const std::function<uint64_t(int, std::atomic<bool>&)>& fn) {
  std::atomic<bool> stop{false};
  std::vector<uint64_t> counts(threads);
  std::vector<std::thread> ts;
  auto t0 = Clock::now();
  for (int i = 0; i < threads; i++) ts.emplace_back([&, i] { counts[i] = fn(i, stop); });
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  stop = true;
  for (auto& t : ts) t.join();
  double el = std::chrono::duration<double>(Clock::now() - t0).count();
  uint64_t total = 0;
  for (auto c : counts) total += c;
  return total / el;
}

// The io_uring model: completions are std::functions run on one reaper thread.
class UringModel {
 public:
  explicit UringModel(unsigned entries) {
    if (io_uring_queue_init(entries, &ring_, 0) != 0) { perror("io_uring_queue_init"); exit(1); }
    reaper_ = std::thread([this] { Reap(); });
  }
  ~UringModel() {
    Submit([](int) {}, [](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); sqe->user_data = 0; }, true);
    reaper_.join();
    io_uring_queue_exit(&ring_);
  }
  void Submit(std::function<void(int)> done, const std::function<void(io_uring_sqe*)>& prep,
              bool last = false) {
    auto* cb = last ? nullptr : new std::function<void(int)>(std::move(done));
    std::lock_guard<std::mutex> g(mu_);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) { io_uring_submit(&ring_); sqe = io_uring_get_sqe(&ring_); }
    prep(sqe);
    io_uring_sqe_set_data(sqe, cb);
    io_uring_submit(&ring_);
  }

 private:
  void Reap() {
    for (;;) {
      io_uring_cqe* cqe;
      if (io_uring_wait_cqe(&ring_, &cqe) != 0) continue;
      auto* cb = static_cast<std::function<void(int)>*>(io_uring_cqe_get_data(cqe));
      int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      if (cb == nullptr) return;
      (*cb)(res);
      delete cb;
    }
  }
  io_uring ring_;
  std::mutex mu_;
  std::thread reaper_;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// ---- sync: durability of many freshly written objects ----

// A fresh store holding `n` new objects of `bytes` bytes each, written the way a volume
// populates blocks (fresh write of a new object); returns the names.
std::shared_ptr<skerry::DirStore> FillStore(const std::string& root, int n, size_t bytes,
                                            skerry::DirStoreOptions options,
                                            std::vector<std::string>* names) {
  auto opened = skerry::DirStore::Open(root, options);
  if (!opened.ok()) { fprintf(stderr, "%s\n", opened.status().ToString().c_str()); exit(1); }
  std::string data(bytes, 'x');
  names->clear();
  for (int i = 0; i < n; i++) {
    names->push_back("v.bench.blk." + std::to_string(i));
    if (!(*opened)->WriteBlocking(names->back(), 0, std::span<const char>(data.data(), data.size()), true).ok()) {
      exit(1);
    }
  }
  return *opened;
}

// Times DirStore::Sync of n freshly written objects: median over `runs` fresh stores.
void SyncCase(const std::string& dir, const char* label, skerry::DirStoreOptions options, int n,
              size_t bytes, int runs) {
  const std::string root = dir + "/store_io_bench.sync." + std::to_string(getpid());
  std::vector<double> ms;
  for (int r = 0; r < runs; r++) {
    std::filesystem::remove_all(root);
    sync();  // start every case from a quiet file system (not timed)
    std::vector<std::string> names;
    auto store = FillStore(root, n, bytes, options, &names);
    std::vector<std::string> again = names;
    auto t0 = Clock::now();
    skerry::Status st = store->SyncBlocking(std::move(again));
    ms.push_back(MsSince(t0));
    if (!st.ok()) { fprintf(stderr, "%s\n", st.ToString().c_str()); exit(1); }
  }
  std::filesystem::remove_all(root);
  std::sort(ms.begin(), ms.end());
  printf("DirStore Sync %-22s %6d objects of %zu B: median %9.2f ms (min %.2f, max %.2f, %d runs) = %.3f ms/object\n",
         label, n, bytes, Median(ms), ms.front(), ms.back(), runs, Median(ms) / n);
  fflush(stdout);
}

}  // namespace

// ---- rewrite: random 4 KiB pwrite into files prepared in different ways ----

// A 256 MiB file at `path`, prepared as `how` says; returns its fd.
int PrepareFile(const std::string& path, const std::string& how, const std::string& big_path) {
  unlink(path.c_str());
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) { perror("open"); exit(1); }
  std::vector<char> buf(how == "4k" ? 4096 : 1 << 20, 'p');
  if (how == "4k" || how == "1m" || how == "1m-dirty") {
    for (size_t off = 0; off < kFileSize; off += buf.size()) {
      if (pwrite(fd, buf.data(), buf.size(), off) != (ssize_t)buf.size()) { perror("pwrite"); exit(1); }
    }
  } else if (how.rfind("1m-split", 0) == 0) {
    // 1 MiB writes as DirStore issues them: in pieces of at most N KiB (1m-split64 = 64 KiB).
    size_t piece = std::stoul(how.substr(8)) * 1024;
    for (size_t off = 0; off < kFileSize; off += piece) {
      if (pwrite(fd, buf.data(), piece, off) != (ssize_t)piece) { perror("pwrite"); exit(1); }
    }
  } else if (how == "sparse") {
    if (ftruncate(fd, kFileSize) != 0) exit(1);
  } else if (how == "fallocate") {
    if (fallocate(fd, 0, 0, kFileSize) != 0) exit(1);
  } else if (how == "copy") {  // what DirStore::Copy does on a file system without reflinks
    int src = open(big_path.c_str(), O_RDONLY | O_CLOEXEC);
    auto copied = skerry::dirstore::CopyData(src, fd, kFileSize, false, "copy");
    close(src);
    if (!copied.ok()) { fprintf(stderr, "%s\n", copied.status().ToString().c_str()); exit(1); }
  } else if (how == "1m-evicted") {
    for (size_t off = 0; off < kFileSize; off += buf.size()) {
      if (pwrite(fd, buf.data(), buf.size(), off) != (ssize_t)buf.size()) { perror("pwrite"); exit(1); }
    }
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // page cache emptied: no large folios left
  } else {
    fprintf(stderr, "unknown preparation %s\n", how.c_str());
    exit(1);
  }
  if (how != "1m-dirty") fdatasync(fd);
  return fd;
}

// usage: store_io_bench rewrite DIR [SECONDS] [PREPARATION...]
int RewriteBench(const std::string& dir, double secs, int argc, char** argv) {
  std::vector<std::string> hows;
  for (int i = 0; i < argc; i++) hows.push_back(argv[i]);
  if (hows.empty()) hows = {"4k", "1m", "1m-dirty", "1m-evicted", "copy", "sparse", "fallocate"};
  const std::string big = dir + "/store_io_bench.big." + std::to_string(getpid());
  close(PrepareFile(big, "1m", big));
  const std::string path = dir + "/store_io_bench.rewrite." + std::to_string(getpid());
  for (const std::string& how : hows) {
    auto t0 = std::chrono::steady_clock::now();
    int fd = PrepareFile(path, how, big);
    double fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double r = RunThreads(1, secs, [&](int i, std::atomic<bool>& stop) {
      alignas(4096) static thread_local char wbuf[kIo];
      std::mt19937_64 rng(i + 1);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (pwrite(fd, wbuf, kIo, (rng() % (kFileSize / kIo)) * kIo) != (ssize_t)kIo) abort();
        n++;
      }
      return n;
    });
    printf("4K rand write, 1 thread, 256 MiB file filled by %-11s %9.0f IOPS (fill incl. fdatasync: %4.0f MB/s)\n",
           how.c_str(), r, kFileSize / fill_s / 1e6);
    fflush(stdout);
    close(fd);
  }
  unlink(path.c_str());
  unlink(big.c_str());
  return 0;
}

// usage: store_io_bench sync DIR [N...] [--runs=R] [--modes=default,serial,uring8,threads16,...]
int SyncBench(const std::string& dir, int argc, char** argv) {
  std::vector<int> counts;
  std::vector<std::string> modes;
  int runs_wanted = 0;
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--runs=", 0) == 0) {
      runs_wanted = atoi(a.c_str() + 7);
    } else if (a.rfind("--modes=", 0) == 0) {
      std::string list = a.substr(8);
      for (size_t p = 0; p <= list.size();) {
        size_t c = list.find(',', p);
        if (c == std::string::npos) c = list.size();
        modes.push_back(list.substr(p, c - p));
        p = c + 1;
      }
    } else {
      counts.push_back(atoi(argv[i]));
    }
  }
  if (counts.empty()) counts = {1, 256, 25600};
  if (modes.empty()) modes = {"serial", "default"};
  for (int n : counts) {
    for (const std::string& mode : modes) {
      skerry::DirStoreOptions options;
      if (mode == "serial") {
        options.sync_parallelism = 1;
      } else if (mode.rfind("uring", 0) == 0) {
        options.sync_parallelism = std::stoul(mode.substr(5));
      } else if (mode.rfind("threads", 0) == 0) {
        options.sync_parallelism = std::stoul(mode.substr(7));
        options.sync_with_io_uring = false;
      } else if (mode != "default") {
        fprintf(stderr, "unknown mode %s\n", mode.c_str());
        return 2;
      }
      int runs = runs_wanted > 0 ? runs_wanted : n <= 1 ? 21 : n <= 256 ? 7 : 3;
      SyncCase(dir, mode.c_str(), options, n, 512, runs);
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "rewrite") {
    return RewriteBench(argc > 2 ? argv[2] : "/tmp", argc > 3 ? atof(argv[3]) : 2.0, argc > 4 ? argc - 4 : 0,
                        argv + 4);
  }
  if (argc > 1 && std::string(argv[1]) == "sync") {
    return SyncBench(argc > 2 ? argv[2] : "/tmp", argc - 3, argv + 3);
  }
  std::string dir = argc > 1 ? argv[1] : "/tmp";
  double secs = argc > 2 ? atof(argv[2]) : 2.0;
  std::string path = dir + "/store_io_bench.XXXXXX";
  int fd = mkstemp(path.data());
  if (fd < 0) { perror("mkstemp"); return 1; }
  unlink(path.c_str());
  std::vector<char> fill(1 << 20, 'x');
  for (size_t off = 0; off < kFileSize; off += fill.size()) {
    if (pwrite(fd, fill.data(), fill.size(), off) != (ssize_t)fill.size()) { perror("pwrite"); return 1; }
  }
  fsync(fd);
  constexpr size_t kBlocks = kFileSize / kIo;

  for (bool write : {false, true}) {
    const char* op = write ? "write" : "read";
    for (int threads : {1, 2}) {
      double r = RunThreads(threads, secs, [&](int i, std::atomic<bool>& stop) {
        alignas(4096) static thread_local char buf[kIo];
        std::mt19937_64 rng(i + 1);
        uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          off_t off = (rng() % kBlocks) * kIo;
          ssize_t r = write ? pwrite(fd, buf, kIo, off) : pread(fd, buf, kIo, off);
          if (r != (ssize_t)kIo) abort();
          n++;
        }
        return n;
      });
      printf("pread/pwrite inline  4K rand%-5s threads=%d          %9.0f IOPS\n", op, threads, r);
    }
    for (int qd : {1, 32}) {
      for (int threads : {1, 2}) {
        UringModel m(256);
        double r = RunThreads(threads, secs, [&](int i, std::atomic<bool>& stop) {
          std::vector<char> bufs(qd * kIo);
          std::mt19937_64 rng(i + 1);
          std::mutex mu;
          std::condition_variable cv;
          int inflight = 0;
          uint64_t n = 0;
          auto issue = [&](int slot) {
            off_t off = (rng() % kBlocks) * kIo;
            char* b = bufs.data() + slot * kIo;
            m.Submit(
                [&](int res) {
                  if (res != (int)kIo) abort();
                  std::lock_guard<std::mutex> g(mu);
                  inflight--;
                  n++;
                  cv.notify_one();
                },
                [&](io_uring_sqe* sqe) {
                  if (write) io_uring_prep_write(sqe, fd, b, kIo, off);
                  else io_uring_prep_read(sqe, fd, b, kIo, off);
                });
          };
          int slot = 0;
          std::unique_lock<std::mutex> lk(mu);
          while (!stop.load(std::memory_order_relaxed)) {
            while (inflight < qd) {
              inflight++;
              lk.unlock();
              issue(slot++ % qd);
              lk.lock();
            }
            cv.wait(lk, [&] { return inflight < qd; });
          }
          cv.wait(lk, [&] { return inflight == 0; });
          return n;
        });
        printf("io_uring + reaper    4K rand%-5s threads=%d qd=%-2d    %9.0f IOPS\n", op, threads, qd, r);
      }
    }
  }
  close(fd);

  auto opened = skerry::DirStore::Open(dir + "/store_io_bench.store." + std::to_string(getpid()));
  if (!opened.ok()) { fprintf(stderr, "%s\n", opened.status().ToString().c_str()); return 1; }
  std::shared_ptr<skerry::DirStore> store = *opened;
  constexpr int kObjects = 64;
  constexpr size_t kObjectSize = 4u << 20;
  for (int i = 0; i < kObjects; i++) {
    if (!store->WriteBlocking("blk." + std::to_string(i), 0, std::span<const char>(fill.data(), fill.size()))
             .ok() ||
        !store->Truncate("blk." + std::to_string(i), kObjectSize).ok()) {
      return 1;
    }
  }
  for (int i = 0; i < kObjects; i++) {  // data everywhere, page-cache hot
    for (size_t off = 0; off < kObjectSize; off += fill.size()) {
      if (!store->WriteBlocking("blk." + std::to_string(i), off, std::span<const char>(fill.data(), fill.size()))
               .ok()) {
        return 1;
      }
    }
  }
  for (bool write : {false, true}) {
    for (int threads : {1, 2}) {
      double r = RunThreads(threads, secs, [&](int i, std::atomic<bool>& stop) {
        std::vector<char> buf(kIo, 'w');
        std::vector<std::string> names;
        for (int o = 0; o < kObjects; o++) names.push_back("blk." + std::to_string(o));
        std::mt19937_64 rng(i + 1);
        uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          const std::string& name = names[rng() % kObjects];
          uint64_t off = (rng() % (kObjectSize / kIo)) * kIo;
          if (write) {
            store->Write(name, off, buf, false, [&](skerry::Status st) { if (!st.ok()) abort(); n++; });
          } else {
            store->Read(name, off, buf, [&](skerry::Result<size_t> r) { if (!r.ok()) abort(); n++; });
          }
        }
        return n;
      });
      printf("DirStore inline      4K rand%-5s threads=%d          %9.0f IOPS\n", write ? "write" : "read",
             threads, r);
    }
  }
  std::string root = store->layout().root();
  store.reset();
  std::filesystem::remove_all(root);
  return 0;
}
