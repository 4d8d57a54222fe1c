// Snapshot and clone time against volume size, with a fully populated map.
//
// For each size, creates a volume on the given store, writes 512 bytes into every block
// through the real Volume API (so every map entry points at a real, small object), flushes,
// then times Catalog::CreateSnapshot and Catalog::Clone — the calls `skerry snap create` and
// `skerry clone` make — several times and prints the median.
//
// usage: snapshot_clone_bench STORE_URI [SIZE...]   (default sizes: 1G 100G 1T)
// Use an empty store that is thrown away afterwards: the volumes are left in it.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "skerry/volume.h"
#include "util/sizes.h"

using namespace skerry;

namespace {

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Check(const Status& st, const char* what) {
  if (!st.ok()) {
    fmt::print(stderr, "{}: {}\n", what, st.ToString());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: {} STORE_URI [SIZE...]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> sizes;
  for (int i = 2; i < argc; i++) sizes.push_back(argv[i]);
  if (sizes.empty()) sizes = {"1G", "100G", "1T"};
  auto store = OpenStore(argv[1]);
  Check(store.status(), "open store");
  auto cat = Catalog::Open(*store);
  Check(cat.status(), "open catalog");
  const int kRuns = 5;
  fmt::print("| volume size | blocks (4 MiB) | populate | snapshot (median of {}) | clone (median of {}) |\n", kRuns, kRuns);
  fmt::print("|---|---|---|---|---|\n");
  for (const std::string& s : sizes) {
    uint64_t size = *ParseSize(s);
    std::string name = "bench-" + s;
    (*cat)->Remove(name);  // leftovers of an interrupted run
    Check((*cat)->Create(name, size), "create");
    auto t0 = std::chrono::steady_clock::now();
    {
      auto v = (*cat)->Open(name);
      Check(v.status(), "open");
      std::string data(512, 'x');
      for (uint64_t off = 0; off < size; off += kDefaultBlockSize)
        Check((*v)->Write(off, std::span<const char>(data.data(), data.size())), "populate");
      Check((*v)->Close(), "close");
    }
    auto t1 = std::chrono::steady_clock::now();
    std::vector<double> snap_ms, clone_ms;
    for (int r = 0; r < kRuns; r++) {
      std::string snap = fmt::format("s{}", r), clone = fmt::format("{}-c{}", name, r);
      auto a = std::chrono::steady_clock::now();
      Check((*cat)->CreateSnapshot(name, snap), "snapshot");
      auto b = std::chrono::steady_clock::now();
      Check((*cat)->Clone(name, snap, clone), "clone");
      auto c = std::chrono::steady_clock::now();
      snap_ms.push_back(Ms(a, b));
      clone_ms.push_back(Ms(b, c));
    }
    fmt::print("| {} | {} | {:.1f} s | {:.2f} ms | {:.2f} ms |\n", FormatSize(size),
               (size + kDefaultBlockSize - 1) / kDefaultBlockSize, Ms(t0, t1) / 1000, Median(snap_ms),
               Median(clone_ms));
    std::fflush(stdout);
    // No cleanup through the catalog: removing 262144 objects one durable delete at a time
    // takes minutes; bench/core.sh deletes the whole store directory instead.
  }
  return 0;
}
