#include "io_errors.h"

#include <cstring>

#include "time_util.h"

namespace msgs {

const char* io_op_name(IoOp op) {
  switch (op) {
    case IoOp::kWrite: return "write";
    case IoOp::kFsync: return "fsync";
    case IoOp::kTruncate: return "truncate";
    case IoOp::kRename: return "rename";
    case IoOp::kDirSync: return "dirSync";
    case IoOp::kOpen: return "open";
    case IoOp::kClose: return "close";
    case IoOp::kDelete: return "delete";
    case IoOp::kWriteback: return "writeback";
  }
  return "io";
}

namespace {

// "cannot fsync" reads better than "cannot dirSync".
const char* verb(IoOp op) {
  switch (op) {
    case IoOp::kDirSync: return "sync the directory of";
    case IoOp::kWriteback: return "drop the cached pages of";
    default: return io_op_name(op);
  }
}

}  // namespace

IoErrors::IoErrors(Events& events, uint64_t log_interval_ms)
    : events_(events), log_limit_(kIoOps, RateLimit(log_interval_ms)) {}

void IoErrors::report(IoOp op, const std::string& path, int err, uint64_t records, const std::string& consequence) {
  int k = static_cast<int>(op);
  stats.failed[k].add();
  std::string message = std::string("cannot ") + verb(op) + " " + path + ": " + strerror(err);
  // A full disk fails every batch: one line per interval and kind, never one per failure.
  if (log_limit_[k].allow(monotonic_ms())) {
    events_.log(LogLevel::kError, consequence.empty() ? message : message + "; " + consequence);
  }
  events_.emit(IoErrorEvent{io_op_name(op), path, message, err, records});
}

}  // namespace msgs
