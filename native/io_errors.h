// The one place a failed I/O operation on the log goes. Every failed write,
// fsync, truncate, rename, directory sync, open, close, delete and cache
// drop (writeback) is counted by kind
// (a stats field and a metric each), logged at most once per interval per
// kind, and emitted as an error event. On Linux a failed fsync clears the
// error it reports: a later fsync that succeeds proves nothing about the
// pages that failed, so nothing here may be silent.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "events.h"
#include "stats.h"

namespace msgs {

enum class IoOp : uint8_t { kWrite, kFsync, kTruncate, kRename, kDirSync, kOpen, kClose, kDelete, kWriteback };
constexpr int kIoOps = 9;

// "write", "fsync", "truncate", "rename", "dirSync", "open", "close", "delete",
// "writeback":
// the stats field and the metric label.
const char* io_op_name(IoOp op);

struct alignas(64) IoErrorStats {
  Counter failed[kIoOps];
};

class IoErrors {
 public:
  explicit IoErrors(Events& events, uint64_t log_interval_ms = 5000);

  // Called by the thread that owns the file (the writer; the Node thread
  // before start). `records`: messages this failure answered WRITE_FAILED
  // (0 when it decided no ACK). `consequence` is appended to the log line
  // ("3 messages answered WRITE_FAILED", "still writing <old segment>").
  void report(IoOp op, const std::string& path, int err, uint64_t records = 0, const std::string& consequence = "");

  IoErrorStats stats;

 private:
  Events& events_;
  std::vector<RateLimit> log_limit_;  // one per kind: a full disk fails every batch
};

}  // namespace msgs
