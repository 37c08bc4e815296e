// The log file as the writer's first sink: stores each flush with one
// append (binary records as the writer framed them, or the original's text
// lines), syncs as the fsync policy and the ACK mode say, rotates segments at
// flush boundaries, and answers WRITE_FAILED for a flush it could not store.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "events.h"
#include "log_file.h"
#include "notifier.h"
#include "shared_queue.h"
#include "sink.h"
#include "stats.h"

namespace msgs {

// Store times (append + its fdatasync when the policy syncs per flush), in
// microseconds: bucket i counts stores that took < 2^i us (the last: more).
struct alignas(64) LatencyHistogram {
  static constexpr int kBuckets = 24;
  Counter buckets[kBuckets];
  void record(uint64_t us);
};

// Durable mode, and fsync 'batch': every flush is synced before its ACKs.
// Otherwise the interval sync (if any) can run on a BackgroundSync.
inline bool syncs_each_flush(const Config& cfg) {
  return cfg.ack_mode == AckMode::kDurable || cfg.file.fsync == FsyncPolicy::kBatch;
}

// Retention and the disk-space guard run in poll(), between flushes: at most
// one unlink per pass plus one per rotation since the last pass
// (LogFile::retention_step), and one statvfs at most
// every 100 ms, after each rotation or deletion, or after a quarter of
// minFreeBytes was written: never per message. Below minFreeBytes the guard
// holds the shared queue (SharedQueue::set_hold): the service threads stop
// reading, exactly as for a full queue, and resume once free space is back
// above minFreeBytes plus an eighth of it.
class FileSink final : public Sink {
 public:
  static constexpr uint64_t kDiskCheckMs = 100;
  static constexpr uint64_t kDiskLogIntervalMs = 10000;

  // `queue`: held while the disk is low. `wake`: the writer's notifier, for
  // archived().
  FileSink(const Config& cfg, LogFile& log, const LiveSettings& live, SharedQueue& queue, Events& events,
           Notifier& wake);

  void open() override;
  // The last sequence number in the log, once open: numbering continues after it.
  uint64_t last_seq() const { return last_seq_; }

  bool reads_records() const override { return cfg_.format == FileFormat::kBinary; }
  bool splits() const override { return log_.rotating(); }
  bool split_before(uint64_t buffered, size_t next_record) const override;
  bool boundary_due(uint64_t now_ms, int* wait_ms) const override;
  void boundary(uint64_t next_seq) override;
  void store(Flush& f) override;
  // The interval fsync (started here, run by the log's BackgroundSync when
  // it has one), archive news, retention and the disk guard.
  int poll(uint64_t now_ms) override;
  bool has_news() const override;
  void drain() override;

  // Node thread: every archive hook finished with this closed segment
  // (afterArchive); the writer hears of it in its next pass.
  void archived(const std::string& path);

  LatencyHistogram store_latency;
  FileSinkStats stats;

 private:
  const uint8_t* text_lines(const Flush& f, size_t* len);
  int check_disk(uint64_t now_ms);
  void take_archived();

  const FileConfig& cfg_;
  const bool sync_each_;  // durable mode or fsync 'batch': sync before the ACKs
  LogFile& log_;
  const LiveSettings& live_;
  SharedQueue& queue_;
  Events& events_;
  Notifier& wake_;
  // Archive news from the Node thread. news_: release by archived() after
  // the push, acquire by the writer before it takes the lock, seq_cst in
  // has_news() (the re-check after prepare_sleep()); a hint only (the mutex
  // carries the data).
  std::mutex archived_mu_;
  std::vector<std::string> archived_;
  std::atomic<bool> news_{false};
  // Disk guard (writer thread).
  bool disk_low_ = false;
  bool disk_check_now_ = true;      // after a rotation or deletion, a reconfigure, at start
  uint64_t next_disk_check_ms_ = 0;
  uint64_t written_since_check_ = 0;
  uint64_t live_version_ = 0;
  uint64_t rotations_since_poll_ = 0;  // retention may delete this many more in the next pass
  RateLimit disk_log_{kDiskLogIntervalMs};
  RateLimit statvfs_log_{kDiskLogIntervalMs};
  uint64_t last_seq_ = 0;
  uint64_t next_sync_ms_ = 0;  // the interval fsync's next attempt (0: from the last good sync)
  std::vector<uint8_t> text_;  // the flush as text lines (format 'text')
};

}  // namespace msgs
