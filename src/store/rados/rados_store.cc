// RadosStore (see rados_store.h and docs/rados.md): skerry objects as RADOS objects.
// Locks and fencing are in rados_lock.cc.
#include "store/rados/rados_store.h"

#include <rados/librados.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "store/rados/rados_impl.h"

namespace skerry {

using namespace rados_detail;

namespace {

// cmpext reports a mismatch at byte i as -MAX_ERRNO - i (Linux's MAX_ERRNO).
constexpr int kMaxErrno = 4095;

// Client-side timeouts where ceph.conf and CEPH_ARGS leave Ceph's own default (the third
// column): a dead cluster must turn into an error, not a hang.
constexpr const char* kDefaultTimeouts[][3] = {
    {"client_mount_timeout", "30", "300"},  // connect: monitors must answer within 30 s
    {"rados_mon_op_timeout", "30", "0"},    // monitor commands (pool lookups); 0 = forever
    {"rados_osd_op_timeout", "60", "0"},    // any OSD operation; longer than a failover (~20-30 s)
};

// Set while a librados completion runs our callback on librados's thread.
thread_local bool t_in_completion = false;

}  // namespace

namespace rados_detail {

librados::bufferlist ToBl(std::string_view data) {
  librados::bufferlist bl;
  bl.append(data.data(), static_cast<unsigned>(data.size()));
  return bl;
}

std::string FromBl(librados::bufferlist& bl) { return bl.to_str(); }

Status RadosError(int r, const std::string& what) {
  int err = -r;
  if (r <= -kMaxErrno) return Status::Conflict(what + ": content differs (cmpext)");
  switch (err) {
    case ENOENT: return Status::NotFound(what + ": no such object");
    case EEXIST: return Status::AlreadyExists(what + ": object exists");
    case ECANCELED: return Status::Conflict(what + ": compare failed");
    case EBUSY: return Status::Busy(what + ": busy");
    case ESHUTDOWN:  // EBLOCKLISTED: another client blocklisted this one (took its lock over)
      return Status::IOError(what + ": this client was fenced (blocklisted) by another skerry that took over its lock",
                             ESHUTDOWN);
    default: return Status::FromErrno(err, what);
  }
}

std::string Quote(const std::string& name) { return "'" + name + "'"; }

Status InvalidName(const std::string& name) {
  return Status::InvalidArgument("invalid object name '" + name + "'");
}

}  // namespace rados_detail

// ---------------------------------------------------------------- URI

Result<RadosStoreOptions> ParseRadosUri(std::string_view uri) {
  constexpr std::string_view kScheme = "rados:";
  if (!uri.starts_with(kScheme)) return Status::InvalidArgument("not a rados: URI: '" + std::string(uri) + "'");
  std::string_view rest = uri.substr(kScheme.size());
  RadosStoreOptions o;
  size_t q = rest.find('?');
  o.pool = std::string(rest.substr(0, q));
  if (o.pool.empty()) {
    return Status::InvalidArgument("store URI '" + std::string(uri) +
                                   "' needs a pool: rados:POOL[?conf=PATH&id=CLIENT&namespace=NS&data_pool=POOL2]");
  }
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    bool seen[4] = {false, false, false, false};
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      size_t eq = kv.find('=');
      std::string key(kv.substr(0, eq));
      std::string value = eq == std::string_view::npos ? std::string() : std::string(kv.substr(eq + 1));
      static const char* const kKeys[] = {"conf", "id", "namespace", "data_pool"};
      std::string* fields[] = {&o.conf, &o.id, &o.ns, &o.data_pool};
      int k = 0;
      while (k < 4 && key != kKeys[k]) k++;
      if (k == 4) {
        return Status::InvalidArgument("store URI '" + std::string(uri) + "': unknown parameter '" + key +
                                       "' (known: conf, id, namespace, data_pool)");
      }
      if (eq == std::string_view::npos || value.empty()) {
        return Status::InvalidArgument("store URI '" + std::string(uri) + "': parameter '" + key + "' needs a value");
      }
      if (seen[k]) return Status::InvalidArgument("store URI '" + std::string(uri) + "': '" + key + "' given twice");
      seen[k] = true;
      *fields[k] = value;
    }
  }
  if (o.data_pool == o.pool) o.data_pool.clear();
  return o;
}

std::string FormatRadosUri(const RadosStoreOptions& o) {
  std::string uri = "rados:" + o.pool;
  char sep = '?';
  auto add = [&](const char* key, const std::string& value) {
    if (value.empty()) return;
    uri += sep;
    uri += key;
    uri += '=';
    uri += value;
    sep = '&';
  };
  add("conf", o.conf);
  add("id", o.id);
  add("namespace", o.ns);
  add("data_pool", o.data_pool);
  return uri;
}

// ---------------------------------------------------------------- Impl

RadosStore::Impl::~Impl() {
  {
    std::unique_lock lock(mu);
    idle.wait(lock, [&] { return in_flight == 0; });
  }
  if (connected) {
    meta.close();
    if (split) data.close();
    rados.shutdown();
  }
}

void RadosStore::Impl::Start(std::unique_ptr<AioOp> op,
                             const std::function<int(librados::AioCompletion*, AioOp&)>& submit) {
  {
    std::lock_guard lock(mu);
    in_flight++;
  }
  op->impl = this;
  AioOp* raw = op.release();
  raw->completion = librados::Rados::aio_create_completion(raw, OnAioComplete);
  // A fenced client sends nothing: it fails as the OSD would.
  int r = fenced.load() ? -ESHUTDOWN : submit(raw->completion, *raw);
  if (r < 0) {  // never queued: no callback will come
    raw->completion->release();
    raw->completion = nullptr;
    raw->finish(r, *raw);
    delete raw;
    EndOp();
  }
}

void RadosStore::Impl::EndOp() {
  std::lock_guard lock(mu);
  if (--in_flight == 0) idle.notify_all();
}

void rados_detail::OnAioComplete(librados::completion_t, void* arg) {
  std::unique_ptr<AioOp> op(static_cast<AioOp*>(arg));
  RadosStore::Impl* impl = op->impl;
  int r = impl->Note(op->completion->get_return_value());
  op->completion->release();
  op->completion = nullptr;
  t_in_completion = true;
  op->finish(r, *op);  // may drop the last reference to the store: see ~RadosStore
  op.reset();
  t_in_completion = false;
  impl->EndOp();
}

// ---------------------------------------------------------------- open / close

namespace {

// Closes stores whose last reference was dropped on a librados thread, each on a thread of
// its own, and joins those threads: as each new one starts (the finished ones), and at exit.
// Joining at exit matters: a detached closer still shutting librados down while the process
// runs its static destructors crashes it. Being a function-local static made on first use,
// it is destroyed before librados's own statics, which exist from load time.
class DeferredCloser {
 public:
  static DeferredCloser& Get() {
    static DeferredCloser closer;
    return closer;
  }

  // `close` drops the store's state (shutting its librados client down).
  void Close(std::function<void()> close) {
    std::lock_guard lock(mu_);
    std::erase_if(closing_, [](Closing& c) {
      if (!c.done->load()) return false;
      c.thread.join();
      return true;
    });
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([close = std::move(close), done]() mutable {
      close();
      done->store(true);
    });
    closing_.push_back(Closing{std::move(t), std::move(done)});
  }

  ~DeferredCloser() {
    std::lock_guard lock(mu_);
    for (Closing& c : closing_) c.thread.join();
  }

 private:
  struct Closing {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mu_;
  std::vector<Closing> closing_;
};

}  // namespace

RadosStore::RadosStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RadosStore::~RadosStore() {
  // Closing waits for operations in flight and shuts librados down, which joins librados's
  // threads: never do that on one of them (a callback dropped the last reference).
  if (t_in_completion) {
    // Moved all the way: the closer thread must hold the only reference.
    DeferredCloser::Get().Close([impl = std::shared_ptr<Impl>(std::move(impl_))]() mutable { impl.reset(); });
  }
}

bool RadosStore::IsDataObject(std::string_view name) {
  if (name.starts_with("c.")) return true;
  if (!name.starts_with("v.")) return false;
  size_t dot = name.find('.', 2);
  return dot != std::string_view::npos && name.substr(dot).starts_with(".b.");
}

Result<std::shared_ptr<RadosStore>> RadosStore::Open(std::string_view uri) {
  SKERRY_ASSIGN_OR_RETURN(RadosStoreOptions options, ParseRadosUri(uri));
  return Open(options);
}

Result<std::shared_ptr<RadosStore>> RadosStore::Open(const RadosStoreOptions& options) {
  if (options.pool.empty()) return Status::InvalidArgument("rados store needs a pool");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (!options.conf.empty()) {  // so that uri() opens the same store from any directory
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(options.conf, ec);
    if (!ec) impl->options.conf = abs.lexically_normal().string();
  }
  if (impl->options.data_pool == impl->options.pool) impl->options.data_pool.clear();
  const std::string where = "rados:" + options.pool;
  int r = impl->rados.init(options.id.empty() ? nullptr : options.id.c_str());
  if (r < 0) return Status::FromErrno(-r, where + ": init client '" + options.id + "'");
  const std::string& conf = impl->options.conf;
  r = impl->rados.conf_read_file(conf.empty() ? nullptr : conf.c_str());
  if (r < 0) {
    if (conf.empty()) {
      return Status::NotFound(where + ": no ceph.conf found ($CEPH_CONF, /etc/ceph/ceph.conf); give ?conf=PATH");
    }
    return Status::FromErrno(-r, where + ": read ceph.conf '" + conf + "'");
  }
  impl->rados.conf_parse_env(nullptr);  // CEPH_ARGS
  for (const auto& t : kDefaultTimeouts) {
    std::string value;
    if (impl->rados.conf_get(t[0], value) == 0 && value == t[2]) impl->rados.conf_set(t[0], t[1]);
  }
  r = impl->rados.connect();
  if (r < 0) {
    if (r == -ETIMEDOUT) {
      return Status::TimedOut(where + ": the monitors did not answer within client_mount_timeout");
    }
    return Status::FromErrno(-r, where + ": connect to the cluster");
  }
  impl->connected = true;
  r = impl->rados.ioctx_create(options.pool.c_str(), impl->meta);
  if (r == -ENOENT) return Status::NotFound(where + ": pool '" + options.pool + "' does not exist");
  if (r < 0) return Status::FromErrno(-r, where + ": open pool '" + options.pool + "'");
  impl->meta.set_namespace(options.ns);
  if (!impl->options.data_pool.empty()) {
    const std::string& dp = impl->options.data_pool;
    r = impl->rados.ioctx_create(dp.c_str(), impl->data);
    if (r == -ENOENT) {
      impl->meta.close();
      return Status::NotFound(where + ": data pool '" + dp + "' does not exist");
    }
    if (r < 0) {
      impl->meta.close();
      return Status::FromErrno(-r, where + ": open data pool '" + dp + "'");
    }
    impl->data.set_namespace(options.ns);
    impl->split = true;
  }
  return std::shared_ptr<RadosStore>(new RadosStore(std::move(impl)));
}

StoreCapabilities RadosStore::capabilities() const {
  StoreCapabilities c;
  c.server_side_copy = true;  // copy_from: the OSD copies, data never comes to us
  c.cheap_copy = false;       // ... but it does copy the bytes (no shared extents)
  c.native_async = true;      // aio completions
  c.persistent = true;
  c.durable_writes = true;    // acknowledged = on stable storage on every replica
  c.fences_lock_holders = true;  // BreakLock blocklists the old holder (rados_lock.cc)
  return c;
}

std::string RadosStore::uri() const { return FormatRadosUri(impl_->options); }

// ---------------------------------------------------------------- data path

void RadosStore::Read(const std::string& name, uint64_t offset, std::span<char> out, ReadDone done) {
  if (!IsValidObjectName(name)) return done(InvalidName(name));
  auto op = std::make_unique<AioOp>();
  librados::IoCtx& io = impl_->For(name);
  if (out.empty()) {  // a 0-byte RADOS read means "the whole object": ask for existence only
    op->finish = [name, done = std::move(done)](int r, AioOp&) {
      if (r < 0) return done(RadosError(r, "rados stat " + Quote(name)));
      done(size_t{0});
    };
    impl_->Start(std::move(op), [&](librados::AioCompletion* c, AioOp& o) {
      return io.aio_stat(name, c, &o.size, &o.mtime);
    });
    return;
  }
  op->finish = [name, out, done = std::move(done)](int r, AioOp& o) {
    if (r < 0) return done(RadosError(r, "rados read " + Quote(name)));
    size_t got = std::min<size_t>(o.bl.length(), out.size());
    // Usually librados has copied the data into `out` already (below); else copy it here.
    if (got > 0 && !o.bl.is_provided_buffer(out.data())) o.bl.begin().copy(static_cast<unsigned>(got), out.data());
    // Past the end of the object: zeros.
    if (got < out.size()) std::memset(out.data() + got, 0, out.size() - got);
    done(out.size());
  };
  // `out` offered as the output buffer: librados's Objecter copies a reply of exactly this
  // length into it (on the messenger thread, before the completion) instead of handing
  // back the buffer it received into. That is still one copy per byte, as before, only in
  // librados rather than on the completion thread; shorter replies (the end of the object)
  // come back in librados's buffer. `out` outlives the op: the caller keeps it until `done`
  // runs, and librados does not touch it after the completion.
  op->bl.push_back(ceph::buffer::create_static(static_cast<unsigned>(out.size()), out.data()));
  impl_->Start(std::move(op), [&](librados::AioCompletion* c, AioOp& o) {
    return io.aio_read(name, c, &o.bl, out.size(), offset);
  });
}

void RadosStore::Write(const std::string& name, uint64_t offset, std::span<const char> data, bool fresh,
                       Done done) {
  if (!IsValidObjectName(name)) return done(InvalidName(name));
  auto op = std::make_unique<AioOp>();
  // librados may hold the buffer after the call returns; copy (cheap next to a round trip).
  op->bl.append(data.data(), static_cast<unsigned>(data.size()));
  if (fresh && offset == 0) {
    op->write_op.write_full(op->bl);
  } else if (fresh) {
    // One atomic compound op: the object exists, is emptied, then holds only `data`.
    op->write_op.create(false);
    op->write_op.truncate(0);
    op->write_op.write(offset, op->bl);
  } else {
    op->write_op.write(offset, op->bl);  // creates the object, even for 0 bytes
  }
  op->finish = [name, done = std::move(done)](int r, AioOp&) {
    done(r < 0 ? RadosError(r, "rados write " + Quote(name)) : Status::OK());
  };
  librados::IoCtx& io = impl_->For(name);
  impl_->Start(std::move(op), [&](librados::AioCompletion* c, AioOp& o) {
    return io.aio_operate(name, c, &o.write_op);
  });
}

void RadosStore::Zero(const std::string& name, uint64_t offset, uint64_t length, Done done) {
  if (!IsValidObjectName(name)) return done(InvalidName(name));
  auto op = std::make_unique<AioOp>();
  op->write_op.assert_exists();
  if (length > 0) {
    // RADOS zero releases the range, but where the range reaches the end of the object it
    // truncates the object to `offset`; the 1-byte zero write after it (same atomic op) puts
    // the size back to at least offset+length, as the interface requires.
    op->write_op.zero(offset, length);
    op->bl.append('\0');
    op->write_op.write(offset + length - 1, op->bl);
  }
  op->finish = [name, done = std::move(done)](int r, AioOp&) {
    done(r < 0 ? RadosError(r, "rados zero " + Quote(name)) : Status::OK());
  };
  librados::IoCtx& io = impl_->For(name);
  impl_->Start(std::move(op), [&](librados::AioCompletion* c, AioOp& o) {
    return io.aio_operate(name, c, &o.write_op);
  });
}

void RadosStore::Copy(const std::string& src, const std::string& dst, Done done) {
  if (!IsValidObjectName(src)) return done(InvalidName(src));
  if (!IsValidObjectName(dst)) return done(InvalidName(dst));
  auto op = std::make_unique<AioOp>();
  if (src == dst) {  // copy_from refuses to copy onto itself; the result must just exist
    op->finish = [src, done = std::move(done)](int r, AioOp&) {
      done(r < 0 ? RadosError(r, "rados stat " + Quote(src)) : Status::OK());
    };
    librados::IoCtx& io = impl_->For(src);
    impl_->Start(std::move(op), [&](librados::AioCompletion* c, AioOp& o) {
      return io.aio_stat(src, c, &o.size, &o.mtime);
    });
    return;
  }
  // The OSD holding dst reads src from its OSD and replaces dst atomically with it (data,
  // size; dst is not created when src is missing). Block objects and their copies are in
  // one pool (IsDataObject), so this is an in-pool copy.
  op->write_op.copy_from(src, impl_->For(src), 0, LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL);
  op->finish = [src, dst, done = std::move(done)](int r, AioOp&) {
    done(r < 0 ? RadosError(r, "rados copy_from " + Quote(src) + " to " + Quote(dst)) : Status::OK());
  };
  librados::IoCtx& io = impl_->For(dst);
  impl_->Start(std::move(op), [&](librados::AioCompletion* c, AioOp& o) {
    return io.aio_operate(dst, c, &o.write_op);
  });
}

void RadosStore::Sync(std::vector<std::string> names, Done done) {
  // Every acknowledged RADOS write is already on stable storage on every replica.
  done(Status::OK());
}

// ---------------------------------------------------------------- control path

Result<std::string> RadosStore::Get(const std::string& name) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  librados::ObjectReadOperation op;
  librados::bufferlist bl;
  int rval = 0;
  op.read(0, 0, &bl, &rval);  // length 0: the whole object
  int r = impl_->Operate(impl_->For(name), name, &op);
  if (r < 0) return RadosError(r, "rados read " + Quote(name));
  return FromBl(bl);
}

Status RadosStore::Put(const std::string& name, std::string_view data) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  librados::ObjectWriteOperation op;
  op.write_full(ToBl(data));
  int r = impl_->Operate(impl_->For(name), name, &op);
  return r < 0 ? RadosError(r, "rados write_full " + Quote(name)) : Status::OK();
}

Status RadosStore::Create(const std::string& name, std::string_view data) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  librados::ObjectWriteOperation op;
  op.create(true);  // exclusive: -EEXIST when taken, and then nothing is written
  op.write_full(ToBl(data));
  int r = impl_->Operate(impl_->For(name), name, &op);
  if (r == -EEXIST) return Status::AlreadyExists("object '" + name + "' exists");
  return r < 0 ? RadosError(r, "rados create " + Quote(name)) : Status::OK();
}

Status RadosStore::CompareAndSwap(const std::string& name, std::string_view expected, std::string_view desired) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  librados::IoCtx& io = impl_->For(name);
  // 1. On the OSD: compare the content with `expected` (cmpext) and get the size and the
  //    object's version. cmpext alone cannot tell "ab" from "ab\0" (bytes past the end
  //    compare as zeros), hence the size.
  librados::ObjectReadOperation check;
  uint64_t size = 0, version = 0;
  int stat_rval = 0, cmp_rval = 0;
  check.stat2(&size, nullptr, &stat_rval);
  librados::bufferlist expected_bl = ToBl(expected);
  if (!expected.empty()) check.cmpext(0, expected_bl, &cmp_rval);
  int r = impl_->Operate(io, name, &check, &version);
  if (r == -ENOENT) return Status::NotFound("object '" + name + "' does not exist");
  if (r <= -kMaxErrno || r == -ECANCELED || (r == 0 && size != expected.size())) {
    return Status::Conflict("object '" + name + "' does not hold the expected content");
  }
  if (r < 0) return RadosError(r, "rados compare " + Quote(name));
  // 2. Replace it only if nothing changed it since: version assert + write_full, one op.
  librados::ObjectWriteOperation swap;
  swap.assert_version(version);
  swap.write_full(ToBl(desired));
  r = impl_->Operate(io, name, &swap);
  if (r == -ERANGE || r == -EOVERFLOW) {
    return Status::Conflict("object '" + name + "' changed during compare-and-swap");
  }
  if (r == -ENOENT) return Status::NotFound("object '" + name + "' does not exist");
  return r < 0 ? RadosError(r, "rados write_full " + Quote(name)) : Status::OK();
}

Status RadosStore::Truncate(const std::string& name, uint64_t size) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  librados::ObjectWriteOperation op;
  op.create(false);  // RADOS truncate does not create a missing object
  op.truncate(size);
  int r = impl_->Operate(impl_->For(name), name, &op);
  return r < 0 ? RadosError(r, "rados truncate " + Quote(name)) : Status::OK();
}

Result<ObjectInfo> RadosStore::Stat(const std::string& name) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  uint64_t size = 0;
  time_t mtime = 0;
  int r = impl_->Call([&] { return impl_->For(name).stat(name, &size, &mtime); });
  if (r < 0) return RadosError(r, "rados stat " + Quote(name));
  return ObjectInfo{size};
}

Status RadosStore::Delete(const std::string& name) {
  if (!IsValidObjectName(name)) return InvalidName(name);
  int r = impl_->Call([&] { return impl_->For(name).remove(name); });
  return r < 0 ? RadosError(r, "rados remove " + Quote(name)) : Status::OK();
}

Status RadosStore::DeleteMany(const std::vector<std::string>& names) {
  // Up to kWindow removes in flight instead of one round trip each.
  constexpr size_t kWindow = 64;
  for (const std::string& name : names)
    if (!IsValidObjectName(name)) return InvalidName(name);
  Status first;
  std::deque<std::pair<librados::AioCompletion*, const std::string*>> inflight;
  auto reap = [&](size_t keep) {
    while (inflight.size() > keep) {
      auto [c, name] = inflight.front();
      inflight.pop_front();
      c->wait_for_complete();
      int r = impl_->Note(c->get_return_value());
      c->release();
      if (r < 0 && r != -ENOENT && first.ok()) first = RadosError(r, "rados remove " + Quote(*name));
    }
  };
  for (const std::string& name : names) {
    librados::AioCompletion* c = librados::Rados::aio_create_completion();
    int r = impl_->Call([&] { return impl_->For(name).aio_remove(name, c); });
    if (r < 0) {
      c->release();
      if (first.ok()) first = RadosError(r, "rados remove " + Quote(name));
      break;
    }
    inflight.emplace_back(c, &name);
    reap(kWindow - 1);
  }
  reap(0);
  return first;
}

Result<std::vector<std::string>> RadosStore::List(std::string_view prefix) {
  std::vector<std::string> names;
  auto list_pool = [&](librados::IoCtx& io, const std::string& pool) -> Status {
    librados::ObjectCursor cursor = io.object_list_begin();
    const librados::ObjectCursor end = io.object_list_end();
    while (!io.object_list_is_end(cursor)) {
      std::vector<librados::ObjectItem> items;
      librados::ObjectCursor next;
      int r = impl_->Call([&] { return io.object_list(cursor, end, 1024, {}, &items, &next); });
      if (r < 0) return RadosError(r, "rados list pool '" + pool + "'");
      for (librados::ObjectItem& item : items) {
        if (item.oid.starts_with(prefix) && IsValidObjectName(item.oid)) names.push_back(std::move(item.oid));
      }
      cursor = next;
    }
    return Status::OK();
  };
  SKERRY_RETURN_IF_ERROR(list_pool(impl_->meta, impl_->options.pool));
  if (impl_->split) SKERRY_RETURN_IF_ERROR(list_pool(impl_->data, impl_->options.data_pool));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace skerry
