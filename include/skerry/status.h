// Status and Result<T>: the one error type of skerry.
//
// Every fallible call returns a Status (or a Result<T>, a value or a Status).
// A Status carries a Code that callers branch on, the errno it came from (so the
// NBD layer can answer a client with the matching error), and a one-line message
// for humans. errno becomes a Status only in Status::FromErrno.
//
// Thread-safety: plain values; safe to copy between threads.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace skerry {

enum class Code {
  kOk = 0,
  kNotFound,         // object, volume or snapshot does not exist
  kAlreadyExists,    // exclusive create found the name taken
  kInvalidArgument,  // bad name, size, range or flag from the caller
  kCorruption,       // stored data failed a checksum or does not decode
  kIOError,          // the store failed to read or write
  kNoSpace,          // ENOSPC / EDQUOT
  kBusy,             // a lock is held by someone else; a dependency prevents the operation
  kConflict,         // compare-and-swap found other content; retry
  kNotSupported,     // the store or format cannot do this
  kTimedOut,         // the store did not answer in time
  kReadOnly,         // write to a snapshot or read-only export
};

class Status {
 public:
  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, ENOENT, std::move(msg)); }
  static Status AlreadyExists(std::string msg) { return Status(Code::kAlreadyExists, EEXIST, std::move(msg)); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, EINVAL, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, EIO, std::move(msg)); }
  static Status IOError(std::string msg, int err = EIO) { return Status(Code::kIOError, err, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(Code::kNoSpace, ENOSPC, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(Code::kBusy, EBUSY, std::move(msg)); }
  static Status Conflict(std::string msg) { return Status(Code::kConflict, EAGAIN, std::move(msg)); }
  static Status NotSupported(std::string msg) { return Status(Code::kNotSupported, EOPNOTSUPP, std::move(msg)); }
  static Status TimedOut(std::string msg) { return Status(Code::kTimedOut, ETIMEDOUT, std::move(msg)); }
  static Status ReadOnly(std::string msg) { return Status(Code::kReadOnly, EROFS, std::move(msg)); }

  // The only place errno turns into a Status. `context` says what was being done,
  // e.g. "open /srv/skerry/objects/ab/x". ENOENT -> NotFound, EEXIST -> AlreadyExists,
  // ENOSPC/EDQUOT -> NoSpace, ETIMEDOUT -> TimedOut, EROFS -> ReadOnly, else IOError.
  static Status FromErrno(int err, std::string_view context);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsAlreadyExists() const { return code_ == Code::kAlreadyExists; }
  bool IsConflict() const { return code_ == Code::kConflict; }
  // errno equivalent (0 when ok): what an NBD client is told.
  int sys_errno() const { return code_ == Code::kOk ? 0 : err_; }
  const std::string& message() const { return msg_; }
  // "not found: volume 'x'"; "ok" when ok.
  std::string ToString() const;

  // Returns a copy with "prefix: " put before the message.
  Status Prefixed(std::string_view prefix) const;

 private:
  Status(Code code, int err, std::string msg) : code_(code), err_(err), msg_(std::move(msg)) {}
  Code code_ = Code::kOk;
  int err_ = 0;
  std::string msg_;
};

const char* CodeName(Code code);

// A value or an error. REQUIRES for value(): ok().
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace skerry

// Return early on error. For Status-returning and Result-returning functions alike.
#define SKERRY_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::skerry::Status _st = (expr);                \
    if (!_st.ok()) return _st;                    \
  } while (0)

#define SKERRY_CONCAT_INNER(a, b) a##b
#define SKERRY_CONCAT(a, b) SKERRY_CONCAT_INNER(a, b)
// SKERRY_ASSIGN_OR_RETURN(auto x, Foo()); binds x to the value or returns the error.
#define SKERRY_ASSIGN_OR_RETURN(lhs, rexpr) \
  SKERRY_ASSIGN_OR_RETURN_IMPL(SKERRY_CONCAT(_res_, __LINE__), lhs, rexpr)
#define SKERRY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                 \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
