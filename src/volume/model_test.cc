// Seeded randomized model test: random sequences of create / write / trim / zero /
// snapshot / clone / rollback / resize / remove / reopen, checked byte for byte against a
// plain in-memory model of what every volume and snapshot must contain.
//
// Every run ends with `skerry check`: no problem, and (nothing crashed) no object that nothing
// names, so space is freed exactly when the last volume or snapshot stops naming an object.
//
// Every run prints its seed; replay one with SKERRY_MODEL_SEED=<seed>. SKERRY_MODEL_RUNS
// sets how many seeds to run (default 20), SKERRY_MODEL_STEPS the steps per run (default 300).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

using testing::Pattern;
using testing::TempDir;

uint64_t EnvOr(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : dflt;
}

struct ModelVolume {
  std::string data;
  std::map<std::string, std::string> snaps;  // name -> content
};

class ModelRun {
 public:
  ModelRun(uint64_t seed, std::shared_ptr<ObjectStore> store) : rng_(seed), seed_(seed), store_(store) {
    cat_ = std::move(*Catalog::Open(std::move(store)));
  }

  void Run(int steps) {
    for (step_ = 0; step_ < steps && !::testing::Test::HasFatalFailure(); step_++) Step();
    CloseAll();
    for (auto& [name, m] : model_) {
      Verify(name, m.data);
      for (auto& [snap, content] : m.snaps) Verify(name + "@" + snap, content);
    }
    auto report = CheckStore(*store_, {});
    ASSERT_TRUE(report.ok()) << Ctx() << ": " << report.status().ToString();
    for (const CheckProblem& p : report->problems) ADD_FAILURE() << Ctx() << ": problem: " << p.object << ": " << p.problem;
    for (const std::string& o : report->unreferenced) ADD_FAILURE() << Ctx() << ": left behind: " << o;
  }

 private:
  uint64_t Rand(uint64_t n) { return n ? std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_) : 0; }
  std::string Ctx() { return "seed " + std::to_string(seed_) + " step " + std::to_string(step_); }

  std::string PickVolume() {
    auto it = model_.begin();
    std::advance(it, Rand(model_.size()));
    return it->first;
  }
  Volume* Handle(const std::string& name) {
    auto& h = open_[name];
    if (!h) {
      auto v = cat_->Open(name);
      EXPECT_TRUE(v.ok()) << Ctx() << ": open " << name << ": " << v.status().ToString();
      if (!v.ok()) return nullptr;
      h = std::move(*v);
    }
    return h.get();
  }
  void CloseHandle(const std::string& name) {
    auto it = open_.find(name);
    if (it == open_.end()) return;
    Status st = it->second->Close();
    EXPECT_TRUE(st.ok()) << Ctx() << ": close " << name << ": " << st.ToString();
    open_.erase(it);
  }
  void CloseAll() {
    while (!open_.empty()) CloseHandle(open_.begin()->first);
  }
  // Reads through the open read-write handle if there is one (it holds unflushed writes),
  // else through a fresh read-only open of what is persisted.
  void Verify(const std::string& spec, const std::string& expect) {
    std::unique_ptr<Volume> fresh;
    Volume* v = nullptr;
    if (auto it = open_.find(spec); it != open_.end()) {
      v = it->second.get();
    } else {
      OpenOptions ro;
      ro.read_only = true;
      auto opened = cat_->Open(spec, ro);
      ASSERT_TRUE(opened.ok()) << Ctx() << ": " << spec << ": " << opened.status().ToString();
      fresh = std::move(*opened);
      v = fresh.get();
    }
    ASSERT_EQ(v->size(), expect.size()) << Ctx() << ": size of " << spec;
    std::string got(expect.size(), 'x');
    ASSERT_TRUE(v->Read(0, std::span<char>(got.data(), got.size())).ok()) << Ctx();
    if (got != expect) {
      size_t i = 0;
      while (got[i] == expect[i]) i++;
      FAIL() << Ctx() << ": " << spec << " differs from the model first at byte " << i;
    }
  }
  bool HasClones(const std::string& name, const std::string& snap) {
    for (auto& [child, parent] : parents_)
      if (parent == name + "@" + snap) return true;
    return false;
  }

  void Trace(const std::string& what) {
    if (trace_) std::printf("  step %d: %s\n", step_, what.c_str());
  }

  void Step() {
    uint64_t op = Rand(100);
    if (model_.empty() || op < 5) return Create();
    std::string name = PickVolume();
    ModelVolume& m = model_[name];
    if (op < 45) return DoWrite(name, m);
    if (op < 52) return DoTrim(name, m, true);
    if (op < 57) return DoTrim(name, m, false);
    if (op < 63) {
      Trace("verify " + name);
      return Verify(name, m.data);
    }
    if (op < 70) {  // snapshot
      CloseHandle(name);
      std::string snap = "s" + std::to_string(next_++);
      Trace("snap create " + name + "@" + snap);
      ASSERT_TRUE(cat_->CreateSnapshot(name, snap).ok()) << Ctx();
      m.snaps[snap] = m.data;
      return;
    }
    if (op < 76 && !m.snaps.empty()) {  // clone
      auto it = m.snaps.begin();
      std::advance(it, Rand(m.snaps.size()));
      std::string child = "v" + std::to_string(next_++);
      uint64_t size = it->second.size() + (Rand(2) ? Rand(4) * 64 * 1024 : 0);
      Trace("clone " + name + "@" + it->first + " " + child + " size " + std::to_string(size));
      ASSERT_TRUE(cat_->Clone(name, it->first, child, size).ok()) << Ctx();
      ModelVolume c;
      c.data = it->second;
      c.data.resize(size, '\0');
      model_[child] = c;
      parents_[child] = name + "@" + it->first;
      return;
    }
    if (op < 80 && !m.snaps.empty()) {  // rollback
      CloseHandle(name);
      auto it = m.snaps.begin();
      std::advance(it, Rand(m.snaps.size()));
      Trace("rollback " + name + "@" + it->first);
      ASSERT_TRUE(cat_->Rollback(name, it->first).ok()) << Ctx();
      m.data = it->second;
      return;
    }
    if (op < 84 && !m.snaps.empty()) {  // snap rm
      CloseHandle(name);
      auto it = m.snaps.begin();
      std::advance(it, Rand(m.snaps.size()));
      Trace("snap rm " + name + "@" + it->first);
      Status st = cat_->RemoveSnapshot(name, it->first);
      if (HasClones(name, it->first)) {
        ASSERT_EQ(st.code(), Code::kBusy) << Ctx();
      } else {
        ASSERT_TRUE(st.ok()) << Ctx() << ": " << st.ToString();
        m.snaps.erase(it);
      }
      return;
    }
    if (op < 89) {  // resize
      CloseHandle(name);
      uint64_t size = 512 * (1 + Rand(4 * 1024 * 1024 / 512));
      bool shrink = size < m.data.size();
      Trace("resize " + name + " " + std::to_string(m.data.size()) + " -> " + std::to_string(size));
      ASSERT_TRUE(cat_->Resize(name, size, shrink).ok()) << Ctx();
      m.data.resize(size, '\0');
      return;
    }
    if (op < 92) {  // remove
      CloseHandle(name);
      bool has_clones = false;
      for (auto& [snap, _] : m.snaps) has_clones |= HasClones(name, snap);
      Trace("rm " + name);
      Status st = cat_->Remove(name);
      if (has_clones) {
        ASSERT_EQ(st.code(), Code::kBusy) << Ctx();
      } else {
        ASSERT_TRUE(st.ok()) << Ctx() << ": " << st.ToString();
        model_.erase(name);
        parents_.erase(name);
      }
      return;
    }
    if (op < 96) {  // verify a snapshot
      for (auto& [snap, content] : m.snaps) Verify(name + "@" + snap, content);
      return;
    }
    Trace("close " + name);
    CloseHandle(name);  // reopen later: exercises map persistence
  }

  void Create() {
    std::string name = "v" + std::to_string(next_++);
    uint32_t bs = 64 * 1024 << Rand(3);
    uint64_t size = 512 * (1 + Rand(3 * 1024 * 1024 / 512));
    Trace("create " + name + " size " + std::to_string(size) + " bs " + std::to_string(bs));
    ASSERT_TRUE(cat_->Create(name, size, bs).ok()) << Ctx();
    model_[name].data.assign(size, '\0');
  }

  std::pair<uint64_t, uint64_t> RandomRange(uint64_t size) {
    uint64_t off = Rand(size);
    uint64_t len = 1 + Rand(std::min<uint64_t>(size - off, Rand(2) ? 8192 : 600 * 1024));
    return {off, len};
  }

  void DoWrite(const std::string& name, ModelVolume& m) {
    Volume* v = Handle(name);
    ASSERT_TRUE(v) << Ctx();
    auto [off, len] = RandomRange(m.data.size());
    std::string data = Pattern(len, static_cast<uint32_t>(step_ * 31 + seed_));
    Trace("write " + name + " " + std::to_string(off) + "+" + std::to_string(len));
    Status st = v->Write(off, std::span<const char>(data.data(), len), Rand(10) == 0);
    ASSERT_TRUE(st.ok()) << Ctx() << ": " << st.ToString();
    m.data.replace(off, len, data);
    if (Rand(8) == 0) {
      ASSERT_TRUE(v->Flush().ok()) << Ctx();
    }
  }

  void DoTrim(const std::string& name, ModelVolume& m, bool trim) {
    Volume* v = Handle(name);
    ASSERT_TRUE(v) << Ctx();
    auto [off, len] = RandomRange(m.data.size());
    bool may_trim = Rand(2) == 0;
    Trace(std::string(trim ? "trim " : may_trim ? "zero " : "zero-nohole ") + name + " " + std::to_string(off) + "+" + std::to_string(len));
    Status st = trim ? v->Trim(off, len) : v->WriteZeroes(off, len, may_trim);
    ASSERT_TRUE(st.ok()) << Ctx() << ": " << st.ToString();
    std::memset(m.data.data() + off, 0, len);
  }

  bool trace_ = std::getenv("SKERRY_MODEL_TRACE") != nullptr;
  std::mt19937_64 rng_;
  uint64_t seed_;
  std::shared_ptr<ObjectStore> store_;
  int step_ = 0;
  int next_ = 0;
  std::unique_ptr<Catalog> cat_;
  std::map<std::string, ModelVolume> model_;
  std::map<std::string, std::string> parents_;  // clone -> "parent@snap"
  std::map<std::string, std::unique_ptr<Volume>> open_;
};

void RunSeeds(const std::string& kind) {
  uint64_t runs = EnvOr("SKERRY_MODEL_RUNS", 20);
  uint64_t steps = EnvOr("SKERRY_MODEL_STEPS", 300);
  const char* fixed = std::getenv("SKERRY_MODEL_SEED");
  std::random_device rd;
  for (uint64_t i = 0; i < (fixed ? 1 : runs); i++) {
    uint64_t seed = fixed ? std::strtoull(fixed, nullptr, 10) : (static_cast<uint64_t>(rd()) << 32 | rd());
    std::printf("model test (%s store): seed %llu (replay with SKERRY_MODEL_SEED=%llu)\n", kind.c_str(),
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    TempDir dir;
    std::string uri = kind == "dir" ? "dir:" + dir.path() : kind == "mem" ? "mem:" : kind;
    if (size_t at = uri.find("{seed}"); at != std::string::npos) uri.replace(at, 6, std::to_string(seed));
    auto store = OpenStore(uri);
    ASSERT_TRUE(store.ok()) << uri << ": " << store.status().ToString();
    ModelRun run(seed, *store);
    run.Run(static_cast<int>(steps));
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "model test failed; replay with SKERRY_MODEL_SEED=" << seed;
      return;
    }
  }
}

TEST(ModelTest, MemStore) { RunSeeds("mem"); }
TEST(ModelTest, DirStore) { RunSeeds("dir"); }
// SKERRY_MODEL_STORE=URI runs the model on that store (tests/rados: a RADOS store); "{seed}"
// in the URI becomes each run's seed, so every run starts empty (e.g. namespace=model-{seed}).
TEST(ModelTest, EnvStore) {
  const char* uri = std::getenv("SKERRY_MODEL_STORE");
  if (!uri || !*uri) GTEST_SKIP() << "SKERRY_MODEL_STORE is not set";
  RunSeeds(uri);
}

}  // namespace
}  // namespace skerry
