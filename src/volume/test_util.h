// Helpers for volume tests: a store per test (mem: or a fresh dir:), a store decorator
// that counts calls, and byte patterns.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>

#include "skerry/check.h"
#include "skerry/object_store.h"
#include "skerry/volume.h"
#include "util/volume_fast_paths.h"
#include "store/fault/forwarding_store.h"
#include "store/test_temp_dir.h"

namespace skerry::testing {

// The fast paths every open volume of the volume layer has (util/volume_fast_paths.h).
inline VolumeFastPaths& Fast(Volume& v) { return *FastPathsOf(v); }

// A fresh temporary directory, removed at destruction (the store tests' helper).
using TempDir = ::skerry::TestTempDir;

// Passes every call through to the inner store, counting data-path reads, writes and copies.
class CountingStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<int> reads{0}, copies{0}, writes{0};

  void Read(const std::string& n, uint64_t o, std::span<char> out, ReadDone d) override {
    reads++;
    ForwardingStore::Read(n, o, out, std::move(d));
  }
  void Write(const std::string& n, uint64_t o, std::span<const char> data, bool fresh, Done d) override {
    writes++;
    ForwardingStore::Write(n, o, data, fresh, std::move(d));
  }
  void Copy(const std::string& s, const std::string& d, Done done) override {
    copies++;
    ForwardingStore::Copy(s, d, std::move(done));
  }
};

// Volume options with deferred copy-ups as `mode` names them: "background" (copier threads),
// "on-demand" (none: a copy-up runs when something needs it done), "off".
inline VolumeOptions ModeOptions(const std::string& mode) {
  VolumeOptions o;
  o.copy_up = mode == "off" ? CopyUpMode::kOff : mode == "on-demand" ? CopyUpMode::kOnDemand : CopyUpMode::kBackground;
  return o;
}

// The whole content of an open volume; a test failure when it cannot be read.
inline std::string ReadWhole(Volume& v) {
  std::string out(v.size(), 'x');
  Status st = v.Read(0, std::span<char>(out.data(), out.size()));
  EXPECT_TRUE(st.ok()) << v.name() << ": " << st.ToString();
  return out;
}

// The whole content of `spec` ("volume" or "volume@snap"), opened read-only; a test failure
// (and "") when it cannot be opened or read.
inline std::string ReadWhole(Catalog& cat, const std::string& spec) {
  OpenOptions ro;
  ro.read_only = true;
  auto v = cat.Open(spec, ro);
  EXPECT_TRUE(v.ok()) << spec << ": " << v.status().ToString();
  if (!v.ok()) return "";
  return ReadWhole(**v);
}

// Creates volume `name` of `data`'s size (block size `bs`) and writes `data` into it.
inline void CreateFilled(Catalog& cat, const std::string& name, const std::string& data, uint32_t bs) {
  ASSERT_TRUE(cat.Create(name, data.size(), bs).ok()) << name;
  auto v = cat.Open(name, OpenOptions{});
  ASSERT_TRUE(v.ok()) << name << ": " << v.status().ToString();
  Status st = (*v)->Write(0, std::span<const char>(data.data(), data.size()));
  ASSERT_TRUE(st.ok()) << name << ": " << st.ToString();
}

// Tests over every store kind and deferred copy-up mode: the parameters are the store
// ("mem", "dir": a fresh directory, "async": a natively asynchronous memory store) and
// the deferred copy-up mode ("background", "on-demand", "off": ModeOptions).
class StoreModeTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    const std::string& kind = std::get<0>(GetParam());
    std::string uri = kind == "dir" ? "dir:" + dir_.path() : kind == "async" ? "delay:ms=0&async=2+mem:" : "mem:";
    auto store = OpenStore(uri);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *store;
    auto cat = Catalog::Open(store_, options_);
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    cat_ = std::move(*cat);
  }

  std::unique_ptr<Volume> Open(const std::string& spec) {
    auto v = cat_->Open(spec, OpenOptions{});
    EXPECT_TRUE(v.ok()) << spec << ": " << v.status().ToString();
    return v.ok() ? std::move(*v) : nullptr;
  }
  void WriteAt(Volume& v, uint64_t off, const std::string& data) {
    Status st = v.Write(off, std::span<const char>(data.data(), data.size()));
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  std::string ReadSpec(const std::string& spec) { return ReadWhole(*cat_, spec); }
  // The verdict of `skerry check`: nothing missing, nothing left over.
  void ExpectCheckClean() {
    auto report = CheckStore(*store_, {});
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    for (const auto& p : report->problems) ADD_FAILURE() << "problem: " << p.object << ": " << p.problem;
    for (const auto& o : report->unreferenced) ADD_FAILURE() << "unreferenced: " << o;
  }

  const VolumeOptions options_ = ModeOptions(std::get<1>(GetParam()));
  TempDir dir_;
  std::shared_ptr<ObjectStore> store_;
  std::unique_ptr<Catalog> cat_;
};

inline auto StoreModes() {
  return ::testing::Combine(::testing::Values("mem", "dir", "async"), ::testing::Values("background", "on-demand", "off"));
}
inline std::string StoreModeName(const ::testing::TestParamInfo<std::tuple<std::string, std::string>>& info) {
  std::string mode = std::get<1>(info.param);
  for (char& c : mode)
    if (c == '-') c = '_';
  return std::get<0>(info.param) + "_" + mode;
}

// Deterministic bytes that differ by position and seed, so misplaced data is caught.
// Another owner takes a volume's write lock over, as after the holder stalled past its
// lease: delete the lock object and take it. Retried: the holder's lease keeper renews by
// taking the lock, which recreates it when it runs between the two.
inline void TakeOverLock(ObjectStore& store, const std::string& lock_name, const std::string& owner) {
  for (int i = 0; i < 100; i++) {
    ASSERT_TRUE(store.Delete(lock_name).ok());
    if (store.Lock(lock_name, owner, 60'000).ok()) return;
  }
  FAIL() << "could not take " << lock_name << " over";
}

inline std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

}  // namespace skerry::testing
