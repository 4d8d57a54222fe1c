// Seeded crash-consistency runs: random workloads through the real Catalog/Volume API over
// a NonDurableStore (src/store/fault/) on a MemStore, a simulated power loss at a random
// store call (unsynced writes dropped or torn), then recovery from what reached the
// MemStore, checked against a model (crash_model.h):
//
//  (a) every byte reads as the value the last completed flush (Flush, FUA, Close,
//      snapshot, a resize to another size) covered, or as one written after it ("old or new");
//  (b) every completed create, clone, snapshot, snapshot removal, rollback, resize, rename
//      and remove is visible; the operation in flight at the crash is all there or absent;
//  (c) CheckStore finds no problem (unreferenced leftovers are allowed).
//
// Half of the seeds also fail 1-3% of store calls (EIO, ENOSPC, ETIMEDOUT) through a
// FaultStore: the failed operation's result is then read back and must be old or new,
// and everything flushed later must survive.
//
// Each run prints its seed; replay one with SKERRY_CRASH_SEED=<seed>. SKERRY_CRASH_RUNS
// sets the number of seeds (default 300), SKERRY_CRASH_LONG=1 runs 5000 (or =N, N),
// SKERRY_CRASH_STEPS the steps per round before the crash is armed (default 80),
// SKERRY_CRASH_TRACE=1 prints every step.
//
// Time and background work are the seed's too: the volumes' clock is simulated (a step moves
// it on, and lease renewals run then, through the same faulty, power-losing store), and
// deferred copy-ups run on demand, or when a step plays the copier thread, so the store calls
// of a seed come in the same order on every replay. SKERRY_CRASH_COPY_UP=background runs them
// on real copier threads instead, without replayable seeds. docs/faults.md.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>

#include "skerry/check.h"
#include "skerry/volume.h"
#include "store/fault/fault_store.h"
#include "store/fault/forwarding_store.h"
#include "store/fault/nondurable_store.h"
#include "store/mem/mem_store.h"
#include "volume/crash_model.h"
#include "util/sim_clock.h"
#include "volume/format.h"
#include "volume/open_volume.h"
#include "volume/test_util.h"

namespace skerry {
namespace {

using crash::ModelVolume;
using crash::SparseBytes;
using testing::Pattern;

uint64_t EnvOr(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : dflt;
}

// Counts the calls that reach the store and pulls the power (NonDurableStore::Crash) at
// a chosen one, which then fails like every call after it.
class TripStore final : public ForwardingStore {
 public:
  TripStore(std::shared_ptr<ObjectStore> inner, NonDurableStore* power) : ForwardingStore(std::move(inner)), power_(power) {}

  // Crash on the `after`-th call from now (1: the next one).
  void Arm(uint64_t after, CrashMode mode, uint64_t seed) {
    crash_at_ = calls_ + after;
    mode_ = mode;
    seed_ = seed;
    armed_ = true;
  }
  void set_paused(bool paused) { paused_ = paused; }
  uint64_t calls() const { return calls_; }

  void Read(const std::string& n, uint64_t o, std::span<char> out, ReadDone d) override {
    Tick();
    ForwardingStore::Read(n, o, out, std::move(d));
  }
  void Write(const std::string& n, uint64_t o, std::span<const char> data, bool fresh, Done d) override {
    Tick();
    ForwardingStore::Write(n, o, data, fresh, std::move(d));
  }
  void Zero(const std::string& n, uint64_t o, uint64_t l, Done d) override {
    Tick();
    ForwardingStore::Zero(n, o, l, std::move(d));
  }
  void Copy(const std::string& s, const std::string& d, Done done) override {
    Tick();
    ForwardingStore::Copy(s, d, std::move(done));
  }
  void Sync(std::vector<std::string> names, Done d) override {
    Tick();
    ForwardingStore::Sync(std::move(names), std::move(d));
  }
  Result<std::string> Get(const std::string& n) override { return Tick(), ForwardingStore::Get(n); }
  Status Put(const std::string& n, std::string_view d) override { return Tick(), ForwardingStore::Put(n, d); }
  Status Create(const std::string& n, std::string_view d) override { return Tick(), ForwardingStore::Create(n, d); }
  Status CompareAndSwap(const std::string& n, std::string_view e, std::string_view d) override {
    return Tick(), ForwardingStore::CompareAndSwap(n, e, d);
  }
  Status Truncate(const std::string& n, uint64_t s) override { return Tick(), ForwardingStore::Truncate(n, s); }
  Result<ObjectInfo> Stat(const std::string& n) override { return Tick(), ForwardingStore::Stat(n); }
  Status Delete(const std::string& n) override { return Tick(), ForwardingStore::Delete(n); }
  Result<std::vector<std::string>> List(std::string_view p) override { return Tick(), ForwardingStore::List(p); }
  Status Lock(const std::string& n, const std::string& o, int64_t l) override { return Tick(), ForwardingStore::Lock(n, o, l); }
  Status Unlock(const std::string& n, const std::string& o) override { return Tick(), ForwardingStore::Unlock(n, o); }
  Result<LockInfo> GetLock(const std::string& n) override { return Tick(), ForwardingStore::GetLock(n); }

 private:
  void Tick() {
    if (paused_) return;
    calls_++;
    if (armed_ && calls_ >= crash_at_) {
      armed_ = false;
      power_->Crash(mode_, seed_);
    }
  }

  NonDurableStore* const power_;
  uint64_t calls_ = 0, crash_at_ = 0, seed_ = 0;
  CrashMode mode_ = CrashMode::kDrop;
  bool armed_ = false, paused_ = false;
};

// The operation that was in flight when the power went: after recovery it is either
// all there or absent.
struct InFlight {
  enum class Kind { kNone, kNewVolume, kSnapshot, kRemove, kRename, kRollback, kSnapRemove } kind = Kind::kNone;
  std::string vol, snap, to, parent;
  uint32_t block_size = 0;
  SparseBytes content;
};

struct RunStats {
  int rounds = 0, steps = 0, crashes_in_op = 0;
  uint64_t injected = 0;
};

class CrashRun {
 public:
  CrashRun(uint64_t seed, int max_steps) : rng_(seed), seed_(seed), max_steps_(max_steps) {
    faults_ = Rand(2) == 0;
    mem_ = std::make_shared<MemStore>();
    const char* mode = std::getenv("SKERRY_CRASH_COPY_UP");
    options_ = testing::ModeOptions(mode && *mode ? mode : "on-demand");
    options_.clock = clock_;
  }

  RunStats Run() {
    int rounds = 1 + static_cast<int>(Rand(3));
    for (round_ = 0; round_ < rounds && !::testing::Test::HasFailure(); round_++) {
      StartRound();
      if (::testing::Test::HasFailure()) break;
      Workload();
      if (::testing::Test::HasFailure()) break;
      Recover();
      stats_.rounds++;
    }
    return stats_;
  }
  bool faults() const { return faults_; }

 private:
  // ------------------------------------------------------------ plumbing

  uint64_t Rand(uint64_t n) { return n ? std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_) : 0; }
  std::string Ctx() const {
    return "seed " + std::to_string(seed_) + " round " + std::to_string(round_) + " step " + std::to_string(step_);
  }
  void Trace(const std::string& what) {
    if (trace_) std::printf("  r%d s%d: %s\n", round_, step_, what.c_str());
  }
  bool Crashed() const { return nd_ && nd_->crashed(); }

  // No injected faults and no crash while the runner looks at what a failed call left.
  class Quiet {
   public:
    explicit Quiet(CrashRun* r) : r_(r) {
      r_->fault_->set_enabled(false);
      r_->trip_->set_paused(true);
    }
    ~Quiet() {
      r_->fault_->set_enabled(true);
      r_->trip_->set_paused(false);
    }

   private:
    CrashRun* r_;
  };

  // Only the codes a FaultStore injects may come back from a failed call.
  void ExpectInjected(const Status& st, const std::string& what) {
    bool injected = st.message().find("injected fault") != std::string::npos &&
                    (st.code() == Code::kIOError || st.code() == Code::kNoSpace || st.code() == Code::kTimedOut);
    // Renewals that failed (injected) several times running let the lease lapse: writes are
    // refused until one gets through.
    injected = injected || (st.code() == Code::kIOError &&
                            st.message().find("could not be renewed in time") != std::string::npos);
    EXPECT_TRUE(faults_ && injected) << Ctx() << ": " << what << ": unexpected error " << st.ToString();
    Trace(what + " failed: " + st.ToString());
  }

  void StartRound() {
    auto nd = std::make_shared<NonDurableStore>(mem_);
    nd_ = nd.get();
    std::vector<FaultRule> rules;
    if (faults_) {
      double rate = 0.01 + 0.01 * static_cast<double>(Rand(3));
      FaultError errors[] = {FaultError::kEIO, FaultError::kENOSPC, FaultError::kETIMEDOUT};
      for (int i = 0; i < 3; i++) {
        FaultRule r;
        r.error = errors[i];
        r.rate = rate / 3;
        r.seed = rng_();
        rules.push_back(r);
      }
    }
    auto fault = std::make_shared<FaultStore>(nd, std::move(rules));
    fault_ = fault.get();
    auto trip = std::make_shared<TripStore>(fault, nd_);
    trip_ = trip.get();
    store_ = trip;
    {
      Quiet q(this);
      auto cat = Catalog::Open(store_, options_);
      ASSERT_TRUE(cat.ok()) << Ctx() << ": " << cat.status().ToString();
      cat_ = std::move(*cat);
    }
  }

  void Workload() {
    uint64_t arm_at = Rand(max_steps_);
    CrashMode mode = Rand(2) ? CrashMode::kTear : CrashMode::kDrop;
    uint64_t crash_seed = rng_();
    for (step_ = 0; !::testing::Test::HasFailure(); step_++) {
      if (step_ == static_cast<int>(arm_at)) {
        // Often at the very next call (between operations), else somewhere inside the next ones.
        uint64_t after = Rand(4) == 0 ? 1 : 1 + Rand(Rand(2) ? 10 : 100);
        Trace(std::string("power cut armed: ") + (mode == CrashMode::kTear ? "tear" : "drop") + " in " +
              std::to_string(after) + " calls");
        trip_->Arm(after, mode, crash_seed);
      }
      if (step_ > static_cast<int>(arm_at) + 300) nd_->Crash(mode, crash_seed);  // never got there
      if (Crashed()) break;
      Step();
      stats_.steps++;
      if (Crashed()) {
        if (inflight_.kind != InFlight::Kind::kNone) stats_.crashes_in_op++;
        break;
      }
    }
    stats_.injected += fault_->injected();
    Trace("power lost");
  }

  // ------------------------------------------------------------ volumes and handles

  std::string PickVolume() {
    auto it = vols_.begin();
    std::advance(it, Rand(vols_.size()));
    return it->first;
  }

  // Forgets a leaked lease (a failed unlock); as if its time had run out.
  void ExpireLease(const std::string& name) {
    Quiet q(this);
    auto info = cat_->Info(name);
    if (!info.ok()) return;
    auto id = volume::VolumeId::FromHex(info->id);
    ASSERT_TRUE(id.ok());
    EXPECT_TRUE(nd_->Put(volume::LockObject(*id), "").ok());
  }

  // A catalog operation refused because an earlier failed unlock leaked the volume's
  // lease (only with injected faults): expire it; the operation is simply not done.
  bool LeakedLease(const Status& st, const std::string& name) {
    if (st.code() != Code::kBusy || !faults_ || Crashed() ||
        st.message().find("open for writing elsewhere") == std::string::npos)
      return false;
    Trace(name + ": " + st.ToString() + "; expiring the leaked lease");
    ExpireLease(name);
    return true;
  }

  Volume* Handle(const std::string& name) {
    if (auto it = open_.find(name); it != open_.end()) return it->second.get();
    auto v = cat_->Open(name);
    if (!v.ok() && LeakedLease(v.status(), name)) v = cat_->Open(name);
    if (!v.ok()) {
      if (!Crashed()) ExpectInjected(v.status(), "open " + name);
      return nullptr;
    }
    return (open_[name] = std::move(*v)).get();
  }

  // Closes the handle if open. False when the power went meanwhile.
  bool CloseHandle(const std::string& name) {
    auto it = open_.find(name);
    if (it == open_.end()) return true;
    Trace("close " + name);
    fault_->set_enabled(false);  // a failed close loses its handle's unflushed writes for good
    Status st = it->second->Close();
    fault_->set_enabled(true);
    open_.erase(it);
    if (st.ok()) {
      vols_[name].Flushed();
      return true;
    }
    EXPECT_TRUE(Crashed()) << Ctx() << ": close " << name << ": " << st.ToString();
    return false;
  }

  // Everything `v` holds: the allocated extents are read, the rest are holes.
  Result<SparseBytes> ReadBack(Volume& v) {
    SparseBytes out(v.size());
    if (v.size() == 0) return out;
    SKERRY_ASSIGN_OR_RETURN(std::vector<Extent> extents, v.Extents(0, v.size()));
    for (const Extent& e : extents) {
      if (e.hole) continue;
      std::string buf(e.length, '\0');
      SKERRY_RETURN_IF_ERROR(v.Read(e.offset, std::span<char>(buf.data(), buf.size())));
      out.Write(e.offset, buf);
    }
    return out;
  }
  Result<SparseBytes> ReadBack(Catalog& cat, const std::string& spec) {
    OpenOptions ro;
    ro.read_only = true;
    SKERRY_ASSIGN_OR_RETURN(auto v, cat.Open(spec, ro));
    return ReadBack(*v);
  }

  bool HasClones(const std::string& name, const std::string& snap) {
    for (auto& [child, parent] : parents_)
      if (parent == name + "@" + snap) return true;
    return false;
  }

  void Rename(const std::string& from, const std::string& to) {
    vols_[to] = std::move(vols_[from]);
    vols_.erase(from);
    if (auto it = open_.find(from); it != open_.end()) {
      open_[to] = std::move(it->second);
      open_.erase(from);
    }
    if (auto it = parents_.find(from); it != parents_.end()) {
      parents_[to] = it->second;
      parents_.erase(from);
    }
    for (auto& [child, parent] : parents_)
      if (parent.starts_with(from + "@")) parent = to + parent.substr(from.size());
  }

  void Forget(const std::string& name) {
    vols_.erase(name);
    parents_.erase(name);
    open_.erase(name);
  }

  // ------------------------------------------------------------ the workload

  void Step() {
    inflight_ = InFlight{};
    uint64_t op = Rand(100);
    if (vols_.empty() || op < 5) return Create();
    std::string name = PickVolume();
    if (op < 40) return DoWrite(name);
    if (op < 46) return DoZero(name, true);
    if (op < 51) return DoZero(name, false);
    if (op < 58) return DoFlush(name);
    if (op < 64) return Snapshot(name);
    if (op < 69) return Clone(name);
    if (op < 72) return Rollback(name);
    if (op < 75) return RemoveSnapshot(name);
    if (op < 81) return Resize(name);
    if (op < 84) return Remove(name);
    if (op < 86) return RenameOp(name);
    if (op < 93) return Verify(name);
    if (op < 95) return Tick();
    if (op < 97) return Background(name);
    CloseHandle(name);
  }

  // Time passes: lease renewals fall due and run (every third of a lease), through the
  // faulty store. A lease lapses only when renewals fail several times running.
  void Tick() {
    int64_t ms = static_cast<int64_t>(Rand(options_.lease_ms / 3 + 1));
    Trace("time passes: " + std::to_string(ms) + " ms, " + std::to_string(clock_->Advance(ms)) + " renewals");
  }

  // The copier thread gets to run: a few of the volume's pending copy-ups.
  void Background(const std::string& name) {
    auto it = open_.find(name);
    if (it == open_.end()) return;
    auto* v = dynamic_cast<volume::OpenVolume*>(it->second.get());
    ASSERT_NE(v, nullptr);
    int ran = v->RunQueuedCopyUps(1 + static_cast<int>(Rand(4)));
    Trace("copier on " + name + ": " + std::to_string(ran) + " copy-ups");
  }

  void Create() {
    std::string name = "v" + std::to_string(next_++);
    bool big = Rand(10) == 0;  // several map chunks (4096 blocks each)
    uint32_t bs = big ? 64 * 1024 : 64 * 1024 << Rand(3);
    uint64_t size = big ? (256ull << 20) + 512 * Rand((1ull << 30) / 512) : 512 * (1 + Rand(2 * 1024 * 1024 / 512));
    Trace("create " + name + " size " + std::to_string(size) + " bs " + std::to_string(bs));
    Status st = cat_->Create(name, size, bs);
    ModelVolume m;
    m.block_size = bs;
    m.cur = SparseBytes(size);
    m.durable = m.cur;
    if (st.ok()) {
      vols_[name] = std::move(m);
    } else if (Crashed()) {
      inflight_ = {InFlight::Kind::kNewVolume, name, "", "", "", bs, SparseBytes(size)};
    } else {
      ExpectInjected(st, "create " + name);
      Quiet q(this);
      if (cat_->Info(name).ok()) vols_[name] = std::move(m);
    }
  }

  std::pair<uint64_t, uint64_t> RandomRange(uint64_t size) {
    uint64_t off = Rand(size);
    if (Rand(8) == 0) off = off / 65536 * 65536;  // block-aligned, so whole blocks get written
    uint64_t len = 1 + Rand(std::min<uint64_t>(size - off, Rand(2) ? 8192 : 600 * 1024));
    return {off, len};
  }

  // A failed write or zeroing: what it left must be old or new, per byte; that is now current.
  void ResolveData(const std::string& name, Volume* v, uint64_t off, const std::string& intended) {
    Quiet q(this);
    ModelVolume& m = vols_[name];
    std::string got(intended.size(), '\0');
    Status st = v->Read(off, std::span<char>(got.data(), got.size()));
    ASSERT_TRUE(st.ok()) << Ctx() << ": read back " << name << ": " << st.ToString();
    std::string old = m.cur.Read(off, intended.size());
    for (size_t i = 0; i < got.size(); i++)
      ASSERT_TRUE(got[i] == old[i] || got[i] == intended[i])
          << Ctx() << ": after a failed write, byte " << off + i << " of " << name << " is neither old nor new";
    m.Write(off, got);
  }

  void DoWrite(const std::string& name) {
    Volume* v = Handle(name);
    if (!v) return;
    ModelVolume& m = vols_[name];
    auto [off, len] = RandomRange(m.cur.size());
    std::string data = Pattern(len, static_cast<uint32_t>(rng_()));
    bool fua = Rand(10) == 0;
    Trace("write " + name + " " + std::to_string(off) + "+" + std::to_string(len) + (fua ? " fua" : ""));
    Status st = v->Write(off, std::span<const char>(data.data(), len), fua);
    if (st.ok()) {
      m.Write(off, std::move(data));
      if (fua) m.Flushed();
    } else if (Crashed()) {
      m.log.push_back({off, len, std::move(data)});
    } else {
      ExpectInjected(st, "write " + name);
      ResolveData(name, v, off, data);
    }
  }

  void DoZero(const std::string& name, bool trim) {
    Volume* v = Handle(name);
    if (!v) return;
    ModelVolume& m = vols_[name];
    auto [off, len] = RandomRange(m.cur.size());
    bool may_trim = trim || Rand(2) == 0;
    if (may_trim && Rand(15) == 0) off = 0, len = m.cur.size();  // all of it, cheap as holes
    bool fua = !trim && Rand(8) == 0;
    Trace(std::string(trim ? "trim " : may_trim ? "zero " : "zero-nohole ") + name + " " + std::to_string(off) + "+" +
          std::to_string(len) + (fua ? " fua" : ""));
    Status st = trim ? v->Trim(off, len) : v->WriteZeroes(off, len, may_trim, fua);
    if (st.ok()) {
      m.Zero(off, len);
      if (fua) m.Flushed();
    } else if (Crashed()) {
      m.log.push_back({off, len, {}});
    } else {
      ExpectInjected(st, "zero " + name);
      ResolveData(name, v, off, std::string(len, '\0'));
    }
  }

  void DoFlush(const std::string& name) {
    Volume* v = Handle(name);
    if (!v) return;
    Trace("flush " + name);
    Status st = v->Flush();
    if (st.ok()) {
      vols_[name].Flushed();
    } else if (!Crashed()) {
      ExpectInjected(st, "flush " + name);
    }
  }

  void Snapshot(const std::string& name) {
    ModelVolume& m = vols_[name];
    std::string snap = "s" + std::to_string(next_++);
    bool via_handle = open_.count(name) && Rand(2);
    Trace("snapshot " + name + "@" + snap + (via_handle ? " (open volume)" : " (catalog)"));
    Status st;
    if (via_handle) {
      st = open_[name]->CreateSnapshot(snap);
    } else {
      if (!CloseHandle(name)) return;
      st = cat_->CreateSnapshot(name, snap);
    }
    if (st.ok()) {
      m.snaps[snap] = m.cur;
      m.Flushed();
    } else if (Crashed()) {
      inflight_ = {InFlight::Kind::kSnapshot, name, snap, "", "", 0, m.cur};
    } else if (LeakedLease(st, name)) {
    } else {
      ExpectInjected(st, "snapshot " + name + "@" + snap);
      Quiet q(this);
      auto list = cat_->ListSnapshots(name);
      ASSERT_TRUE(list.ok()) << Ctx() << ": " << list.status().ToString();
      for (auto& s : *list)
        if (s.name == snap) {
          m.snaps[snap] = m.cur;
          m.Flushed();  // a snapshot is made only after its flush
        }
      if (via_handle && st.message().find("may have been taken") != std::string::npos) {
        // The volume could not read its header back to learn whether it moved to the next
        // epoch: it refuses writes, and its closing flush, until reopened. Its flush before
        // the header update succeeded, so nothing it held is lost.
        Status closed = open_[name]->Close();
        EXPECT_NE(closed.message().find("outcome of a snapshot is unknown"), std::string::npos)
            << Ctx() << ": close after an unknown snapshot: " << closed.ToString();
        open_.erase(name);
        m.Flushed();
      }
    }
  }

  void Clone(const std::string& name) {
    ModelVolume& m = vols_[name];
    if (m.snaps.empty()) return;
    auto it = m.snaps.begin();
    std::advance(it, Rand(m.snaps.size()));
    std::string snap = it->first, child = "v" + std::to_string(next_++);
    SparseBytes content = it->second;
    content.Resize(content.size() + (Rand(2) ? Rand(4) * 64 * 1024 : 0));
    Trace("clone " + name + "@" + snap + " " + child + " size " + std::to_string(content.size()));
    Status st = cat_->Clone(name, snap, child, content.size());
    ModelVolume c;
    c.block_size = m.block_size;
    c.cur = content;
    c.durable = content;
    if (st.ok()) {
      vols_[child] = std::move(c);
      parents_[child] = name + "@" + snap;
    } else if (Crashed()) {
      inflight_ = {InFlight::Kind::kNewVolume, child, "", "", name + "@" + snap, m.block_size, content};
    } else {
      ExpectInjected(st, "clone " + child);
      Quiet q(this);
      if (cat_->Info(child).ok()) {
        vols_[child] = std::move(c);
        parents_[child] = name + "@" + snap;
      }
    }
  }

  void Rollback(const std::string& name) {
    ModelVolume& m = vols_[name];
    if (m.snaps.empty()) return;
    auto it = m.snaps.begin();
    std::advance(it, Rand(m.snaps.size()));
    std::string snap = it->first;
    if (!CloseHandle(name)) return;
    Trace("rollback " + name + "@" + snap);
    Status st = cat_->Rollback(name, snap);
    if (st.ok()) {
      m.Rebase(m.snaps[snap]);
    } else if (Crashed()) {
      inflight_ = {InFlight::Kind::kRollback, name, snap, "", "", 0, m.snaps[snap]};
    } else if (LeakedLease(st, name)) {
    } else {
      ExpectInjected(st, "rollback " + name + "@" + snap);
      Quiet q(this);
      auto got = ReadBack(*cat_, name);
      ASSERT_TRUE(got.ok()) << Ctx() << ": " << got.status().ToString();
      if (*got == m.snaps[snap]) {
        m.Rebase(*got);
      } else {
        ASSERT_TRUE(*got == m.cur) << Ctx() << ": a failed rollback of " << name << " left neither the old content nor the snapshot's";
      }
    }
  }

  void RemoveSnapshot(const std::string& name) {
    ModelVolume& m = vols_[name];
    if (m.snaps.empty()) return;
    auto it = m.snaps.begin();
    std::advance(it, Rand(m.snaps.size()));
    std::string snap = it->first;
    if (!CloseHandle(name)) return;
    Trace("snap rm " + name + "@" + snap);
    Status st = cat_->RemoveSnapshot(name, snap);
    bool clones = HasClones(name, snap);
    if (st.ok()) {
      EXPECT_FALSE(clones) << Ctx() << ": removed " << name << "@" << snap << " although a clone depends on it";
      m.snaps.erase(snap);
    } else if (Crashed()) {
      inflight_ = {InFlight::Kind::kSnapRemove, name, snap, "", "", 0, SparseBytes()};
    } else if (st.code() == Code::kBusy && clones) {
      // refused, as it must be
    } else if (LeakedLease(st, name)) {
    } else {
      ExpectInjected(st, "snap rm " + name + "@" + snap);
      Quiet q(this);
      auto list = cat_->ListSnapshots(name);
      ASSERT_TRUE(list.ok()) << Ctx() << ": " << list.status().ToString();
      bool there = false;
      for (auto& s : *list) there |= s.name == snap;
      if (!there) m.snaps.erase(snap);
    }
  }

  void Resize(const std::string& name) {
    ModelVolume& m = vols_[name];
    uint64_t old = m.cur.size();
    uint64_t cap = std::min<uint64_t>(std::max<uint64_t>(old * 2, 2 << 20), 3ull << 29);
    uint64_t size = 512 * (1 + Rand(cap / 512));
    bool via_handle = open_.count(name) && Rand(2);
    Trace("resize " + name + " " + std::to_string(old) + " -> " + std::to_string(size) + (via_handle ? " (open volume)" : ""));
    Status st;
    if (via_handle) {
      st = open_[name]->Resize(size, true);
    } else {
      if (!CloseHandle(name)) return;
      st = cat_->Resize(name, size, true);
    }
    if (st.ok()) {
      // A resize flushes (with the header carrying the new size); to the same size it is a no-op.
      m.cur.Resize(size);
      if (size != old) m.Flushed();
      return;
    }
    // Not done: the old size and content, or the new ones (all or nothing).
    if (Crashed()) {
      m.other_sizes.insert(size);
      return;
    }
    // Failed, not crashed: the shrink may have landed all the same (an error after its
    // header, as in a failed unlock at close). Then the bytes it dropped are gone for good:
    // a later grow shows zeros there, also after a crash that goes back to the durable size.
    if (size < old) m.log.push_back({size, old - size, {}});
    if (LeakedLease(st, name)) return;
    ExpectInjected(st, "resize " + name);
    Quiet q(this);
    Result<SparseBytes> got = Status::OK();
    if (via_handle) {
      got = ReadBack(*open_[name]);
    } else {
      got = ReadBack(*cat_, name);
    }
    ASSERT_TRUE(got.ok()) << Ctx() << ": " << got.status().ToString();
    uint64_t now = got->size();
    ASSERT_TRUE(now == old || now == size) << Ctx() << ": a failed resize of " << name << " left size " << now;
    SparseBytes expect = m.cur;
    expect.Resize(std::min(old, size));
    expect.Resize(now);
    // Below the smaller size nothing may change; above it, old bytes or zeros.
    SparseBytes low = *got;
    low.Resize(std::min(old, size));
    low.Resize(now);
    ASSERT_TRUE(low == expect) << Ctx() << ": a failed resize of " << name << " changed data below the new end";
    for (uint64_t p : got->Pages()) {
      for (uint64_t i = std::max(p * SparseBytes::kPage, std::min(old, size)); i < std::min(now, (p + 1) * SparseBytes::kPage); i++) {
        ASSERT_TRUE(got->At(i) == 0 || got->At(i) == m.cur.At(i)) << Ctx() << ": byte " << i << " after a failed resize";
      }
    }
    m.cur = *got;
    if (now != m.durable.size()) m.other_sizes.insert(now);
  }

  void Remove(const std::string& name) {
    bool clones = false;
    for (auto& [snap, _] : vols_[name].snaps) clones |= HasClones(name, snap);
    if (!CloseHandle(name)) return;
    Trace("rm " + name);
    Status st = cat_->Remove(name);
    if (st.ok()) {
      EXPECT_FALSE(clones) << Ctx() << ": removed " << name << " although clones depend on it";
      Forget(name);
    } else if (Crashed()) {
      inflight_ = {InFlight::Kind::kRemove, name, "", "", "", 0, SparseBytes()};
    } else if (st.code() == Code::kBusy && clones) {
      // refused, as it must be
    } else if (LeakedLease(st, name)) {
    } else {
      ExpectInjected(st, "rm " + name);
      Quiet q(this);
      if (!cat_->Info(name).ok()) Forget(name);
    }
  }

  void RenameOp(const std::string& name) {
    if (!CloseHandle(name)) return;  // a rename takes the write lock, as a removal does
    std::string to = "v" + std::to_string(next_++);
    Trace("rename " + name + " " + to);
    Status st = cat_->Rename(name, to);
    if (st.ok()) {
      Rename(name, to);
    } else if (Crashed()) {
      inflight_ = {InFlight::Kind::kRename, name, "", to, "", 0, SparseBytes()};
    } else if (LeakedLease(st, name)) {
    } else {
      ExpectInjected(st, "rename " + name);
      Quiet q(this);
      if (cat_->Info(to).ok()) Rename(name, to);
    }
  }

  // A read now must return exactly what the model says (errors only if injected).
  void Verify(const std::string& name) {
    ModelVolume& m = vols_[name];
    std::string spec = name;
    const SparseBytes* expect = &m.cur;
    if (!m.snaps.empty() && Rand(3) == 0) {
      auto it = m.snaps.begin();
      std::advance(it, Rand(m.snaps.size()));
      spec = name + "@" + it->first;
      expect = &it->second;
    }
    std::unique_ptr<Volume> ro;
    Volume* v = nullptr;
    if (spec == name && open_.count(name)) {
      v = open_[name].get();
    } else {
      OpenOptions o;
      o.read_only = true;
      auto opened = cat_->Open(spec, o);
      if (!opened.ok()) {
        if (!Crashed()) ExpectInjected(opened.status(), "open " + spec);
        return;
      }
      ro = std::move(*opened);
      v = ro.get();
    }
    auto [off, len] = RandomRange(expect->size());
    Trace("verify " + spec + " " + std::to_string(off) + "+" + std::to_string(len));
    ASSERT_EQ(v->size(), expect->size()) << Ctx() << ": size of " << spec;
    std::string got(len, '\0');
    Status st = v->Read(off, std::span<char>(got.data(), len));
    if (!st.ok()) {
      if (!Crashed()) ExpectInjected(st, "read " + spec);
      return;
    }
    std::string want = expect->Read(off, len);
    if (got != want) {
      size_t i = 0;
      while (got[i] == want[i]) i++;
      FAIL() << Ctx() << ": " << spec << " reads wrong data at byte " << off + i;
    }
  }

  // ------------------------------------------------------------ recovery

  // Why `got`, read after the crash, is not what `m` allows; empty if it is.
  std::string Explain(const ModelVolume& m, const SparseBytes& got) {
    if (got.size() != m.durable.size() && !m.other_sizes.count(got.size()))
      return "size is " + std::to_string(got.size()) + ", the last flush left " + std::to_string(m.durable.size());
    std::set<uint64_t> pages = got.Pages(), durable = m.durable.Pages();
    pages.insert(durable.begin(), durable.end());
    constexpr uint64_t kPage = SparseBytes::kPage;
    for (uint64_t p : pages) {
      uint64_t start = p * kPage, end = std::min(got.size(), start + kPage);
      if (start >= end) continue;
      std::string got_page = got.Read(start, end - start), base_page = m.durable.Read(start, end - start);
      if (got_page == base_page) continue;
      std::vector<const crash::LoggedChange*> covering;
      for (const auto& c : m.log)
        if (c.offset < end && c.offset + c.length > start) covering.push_back(&c);
      for (uint64_t i = start; i < end; i++) {
        char g = got_page[i - start], base = base_page[i - start];
        if (g == base) continue;
        bool explained = false;
        int cover = 0;
        for (const auto* c : covering)
          if (i >= c->offset && i < c->offset + c->length) {
            cover++;
            if (c->At(i) == g) {
              explained = true;
              break;
            }
          }
        if (!explained) {
          char buf[200];
          std::snprintf(buf, sizeof buf,
                        "byte %llu reads 0x%02x; the last flush left 0x%02x and %d change(s) since cover it, none "
                        "with that value",
                        static_cast<unsigned long long>(i), g & 0xff, base & 0xff, cover);
          return buf;
        }
      }
    }
    return "";
  }

  void Recover() {
    // The power is off: every handle is dropped without Close (their destructors try to
    // flush into the dead store and reach nothing), then the machine boots from mem_.
    open_.clear();
    cat_.reset();
    store_.reset();
    nd_ = nullptr;
    fault_ = nullptr;
    trip_ = nullptr;
    // The dead writers' leases lapse while the machine is down.
    auto all = mem_->List("");
    ASSERT_TRUE(all.ok());
    for (const std::string& n : *all) {
      if (n.ends_with(".lock")) {
        ASSERT_TRUE(mem_->Put(n, "").ok());
      }
    }

    auto opened = Catalog::Open(mem_, options_);
    ASSERT_TRUE(opened.ok()) << Ctx() << ": catalog after the crash: " << opened.status().ToString();
    Catalog& cat = **opened;
    auto report = CheckStore(*mem_, {});
    ASSERT_TRUE(report.ok()) << Ctx() << ": " << report.status().ToString();
    for (const CheckProblem& p : report->problems)
      ADD_FAILURE() << Ctx() << ": after the crash, check: " << p.volume << ": " << p.object << ": " << p.problem;
    if (!report->ok()) return;

    auto list = cat.List();
    ASSERT_TRUE(list.ok()) << Ctx() << ": " << list.status().ToString();
    std::map<std::string, VolumeInfo> actual;
    for (auto& info : *list) actual[info.name] = info;
    const InFlight& f = inflight_;
    using K = InFlight::Kind;
    if (f.kind == K::kRename && actual.count(f.to) && !actual.count(f.vol)) Rename(f.vol, f.to);

    std::vector<std::string> names;
    for (auto& [n, _] : vols_) names.push_back(n);
    for (const std::string& name : names) {
      ModelVolume& m = vols_[name];
      auto it = actual.find(name);
      if (it == actual.end()) {
        if (f.kind == K::kRemove && f.vol == name) {
          Forget(name);
          continue;
        }
        ADD_FAILURE() << Ctx() << ": volume " << name << " is gone after the crash";
        return;
      }
      const VolumeInfo& info = it->second;
      auto got = ReadBack(cat, name);
      ASSERT_TRUE(got.ok()) << Ctx() << ": reading " << name << " after the crash: " << got.status().ToString();
      bool rolled_back = f.kind == K::kRollback && f.vol == name && *got == f.content;
      std::string why = rolled_back ? "" : Explain(m, *got);
      if (!why.empty()) {
        ADD_FAILURE() << Ctx() << ": after the crash, " << name << ": " << why;
        return;
      }
      std::string parent = parents_.count(name) ? parents_[name] : "";
      EXPECT_EQ(info.parent, parent) << Ctx() << ": parent of " << name;
      // Snapshots: exactly the model's, give or take the one in flight; contents exact.
      std::set<std::string> snaps;
      for (auto& s : info.snapshots) snaps.insert(s.name);
      for (auto sit = m.snaps.begin(); sit != m.snaps.end();) {
        if (!snaps.count(sit->first)) {
          if (f.kind == K::kSnapRemove && f.vol == name && f.snap == sit->first) {
            sit = m.snaps.erase(sit);
            continue;
          }
          ADD_FAILURE() << Ctx() << ": snapshot " << name << "@" << sit->first << " is gone after the crash";
          return;
        }
        snaps.erase(sit->first);
        auto sgot = ReadBack(cat, name + "@" + sit->first);
        ASSERT_TRUE(sgot.ok()) << Ctx() << ": " << sgot.status().ToString();
        if (!(*sgot == sit->second)) {
          ADD_FAILURE() << Ctx() << ": snapshot " << name << "@" << sit->first << " changed across the crash";
          return;
        }
        ++sit;
      }
      for (const std::string& s : snaps) {
        if (!(f.kind == K::kSnapshot && f.vol == name && f.snap == s)) {
          ADD_FAILURE() << Ctx() << ": snapshot " << name << "@" << s << " appeared from nowhere";
          return;
        }
        auto sgot = ReadBack(cat, name + "@" + s);
        ASSERT_TRUE(sgot.ok()) << Ctx() << ": " << sgot.status().ToString();
        if (!(*sgot == f.content)) {
          ADD_FAILURE() << Ctx() << ": snapshot " << name << "@" << s << " (in flight at the crash) is not the volume at that time";
          return;
        }
        m.snaps[s] = *sgot;
      }
      m.Rebase(*got);
      actual.erase(it);
    }
    for (auto& [name, info] : actual) {
      if (!(f.kind == K::kNewVolume && f.vol == name)) {
        ADD_FAILURE() << Ctx() << ": volume " << name << " appeared from nowhere";
        return;
      }
      auto got = ReadBack(cat, name);
      ASSERT_TRUE(got.ok()) << Ctx() << ": " << got.status().ToString();
      if (!(*got == f.content) || !info.snapshots.empty() || info.parent != f.parent) {
        ADD_FAILURE() << Ctx() << ": volume " << name << " (in flight at the crash) is there but not as made";
        return;
      }
      ModelVolume m;
      m.block_size = f.block_size;
      m.Rebase(*got);
      vols_[name] = std::move(m);
      if (!f.parent.empty()) parents_[name] = f.parent;
    }
    Trace("recovered: " + std::to_string(vols_.size()) + " volumes, " +
          std::to_string(report->unreferenced.size()) + " leftover objects");
  }

  bool trace_ = std::getenv("SKERRY_CRASH_TRACE") != nullptr;
  std::shared_ptr<SimClock> clock_ = std::make_shared<SimClock>();
  VolumeOptions options_;
  std::mt19937_64 rng_;
  const uint64_t seed_;
  const int max_steps_;
  bool faults_ = false;
  int round_ = 0, step_ = 0, next_ = 0;
  RunStats stats_;

  std::shared_ptr<MemStore> mem_;       // the disk: what survives
  NonDurableStore* nd_ = nullptr;       // the page cache: lost or torn at the crash
  FaultStore* fault_ = nullptr;         // injected errors (none unless faults_)
  TripStore* trip_ = nullptr;           // pulls the power at a chosen call
  std::shared_ptr<ObjectStore> store_;  // the top of the stack
  std::unique_ptr<Catalog> cat_;

  std::map<std::string, ModelVolume> vols_;
  std::map<std::string, std::string> parents_;  // clone -> "volume@snap"
  std::map<std::string, std::unique_ptr<Volume>> open_;
  InFlight inflight_;
};

TEST(CrashTest, RandomWorkloadsSurvivePowerLoss) {
  uint64_t runs = EnvOr("SKERRY_CRASH_RUNS", 300);
  if (const char* l = std::getenv("SKERRY_CRASH_LONG"); l && *l) {
    uint64_t n = EnvOr("SKERRY_CRASH_LONG", 1);
    runs = n > 1 ? n : 5000;
  }
  int steps = static_cast<int>(EnvOr("SKERRY_CRASH_STEPS", 80));
  const char* fixed = std::getenv("SKERRY_CRASH_SEED");
  std::random_device rd;
  auto start = std::chrono::steady_clock::now();
  RunStats total;
  uint64_t with_faults = 0;
  for (uint64_t i = 0; i < (fixed ? 1 : runs); i++) {
    uint64_t seed = fixed ? std::strtoull(fixed, nullptr, 10) : (static_cast<uint64_t>(rd()) << 32 | rd());
    std::printf("crash run %llu: seed %llu (replay with SKERRY_CRASH_SEED=%llu)\n", static_cast<unsigned long long>(i),
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    CrashRun run(seed, steps);
    RunStats s = run.Run();
    total.rounds += s.rounds;
    total.steps += s.steps;
    total.crashes_in_op += s.crashes_in_op;
    total.injected += s.injected;
    with_faults += run.faults();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "crash run failed; replay with SKERRY_CRASH_SEED=" << seed;
      return;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("crash runs: %llu seeds (%llu with injected faults), %d crashes (%d during a create, clone, snapshot, rollback, rename or remove), "
              "%d steps, %llu injected errors, %.1f s\n",
              static_cast<unsigned long long>(fixed ? 1 : runs), static_cast<unsigned long long>(with_faults),
              total.rounds, total.crashes_in_op, total.steps, static_cast<unsigned long long>(total.injected), secs);
}

}  // namespace
}  // namespace skerry
