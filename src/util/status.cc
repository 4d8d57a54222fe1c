#include "skerry/status.h"

#include <cstring>
#include <string>

namespace skerry {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kCorruption: return "corruption";
    case Code::kIOError: return "I/O error";
    case Code::kNoSpace: return "no space";
    case Code::kBusy: return "busy";
    case Code::kConflict: return "conflict";
    case Code::kNotSupported: return "not supported";
    case Code::kTimedOut: return "timed out";
    case Code::kReadOnly: return "read-only";
  }
  return "unknown";
}

Status Status::FromErrno(int err, std::string_view context) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  switch (err) {
    case ENOENT: return Status(Code::kNotFound, err, std::move(msg));
    case EEXIST: return Status(Code::kAlreadyExists, err, std::move(msg));
    case ENOSPC:
    case EDQUOT: return Status(Code::kNoSpace, ENOSPC, std::move(msg));
    case ETIMEDOUT: return Status(Code::kTimedOut, err, std::move(msg));
    case EROFS: return Status(Code::kReadOnly, err, std::move(msg));
    case EINVAL: return Status(Code::kInvalidArgument, err, std::move(msg));
    case EOPNOTSUPP: return Status(Code::kNotSupported, err, std::move(msg));
    default: return Status(Code::kIOError, err, std::move(msg));
  }
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + msg_;
}

Status Status::Prefixed(std::string_view prefix) const {
  if (ok()) return *this;
  return Status(code_, err_, std::string(prefix) + ": " + msg_);
}

}  // namespace skerry
