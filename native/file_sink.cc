#include "file_sink.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "codec.h"
#include "record.h"
#include "time_util.h"

namespace msgs {

namespace {

// The shorter of two waits, where -1 means none.
int sooner(int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

}  // namespace

void LatencyHistogram::record(uint64_t us) {
  int bucket = 0;
  while (bucket < kBuckets - 1 && us >= (uint64_t{1} << bucket)) bucket++;
  buckets[bucket].add();
}

FileSink::FileSink(const Config& cfg, LogFile& log, const LiveSettings& live, SharedQueue& queue, Events& events,
                   Notifier& wake)
    : cfg_(cfg.file),
      sync_each_(syncs_each_flush(cfg)),
      log_(log),
      live_(live),
      queue_(queue),
      events_(events),
      wake_(wake) {}

void FileSink::open() { last_seq_ = log_.open(); }

bool FileSink::split_before(uint64_t buffered, size_t next_record) const {
  return log_.rotating() && log_.rotation_due(buffered, next_record);
}

bool FileSink::boundary_due(uint64_t now_ms, int* wait_ms) const {
  return log_.rotating() && log_.rotation_due_by_age(now_ms, wait_ms);
}

void FileSink::boundary(uint64_t next_seq) {
  log_.rotate(next_seq);
  rotations_since_poll_++;
  disk_check_now_ = true;
}

// The original's lines for the flush's messages (format 'text' carries no
// sequence numbers, so the binary records are not reused).
const uint8_t* FileSink::text_lines(const Flush& f, size_t* len) {
  size_t n = 0;
  for (const Span& s : *f.spans) {
    for (uint32_t i = s.begin; i < s.end; i++) {
      const MsgRef& m = s.batch->msgs[i];
      if (m.status != kPending) continue;
      size_t need = n + record::text_max_size(m.name_len, m.payload_len);
      if (text_.size() < need) text_.resize(need * 2);
      n += record::encode_text(text_.data() + n, m.client_id, m.msg_id, s.batch->data + m.offset, m.name_len,
                               s.batch->data + m.payload_offset(), m.payload_len);
    }
  }
  *len = n;
  return text_.data();
}

void FileSink::store(Flush& f) {
  if (f.count == 0) return;
  size_t len = f.bytes;
  const uint8_t* data = cfg_.format == FileFormat::kText ? text_lines(f, &len) : f.records;
  auto t0 = std::chrono::steady_clock::now();
  bool ok = log_.append(data, len, f.count);
  if (ok && sync_each_ && !log_.sync(f.count)) {
    // The ACKs of a synced flush promise an fdatasync: without it they are
    // WRITE_FAILED, and the records come back out of the file.
    log_.cut_back(len, f.count);
    ok = false;
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  store_latency.record(static_cast<uint64_t>(us));
  if (!ok) f.status = wire::kAckWriteFailed;
  stats.last_store_failed.v.store(ok ? 0 : 1, std::memory_order_relaxed);
  written_since_check_ += len;
}

int FileSink::poll(uint64_t now_ms) {
  int timeout = -1;
  uint64_t version = live_.version.load(std::memory_order_relaxed);
  if (version != live_version_) {  // reconfigured: bounds may have moved
    live_version_ = version;
    disk_check_now_ = true;
  }
  if (news_.load(std::memory_order_acquire)) take_archived();
  // One unlink per pass, plus one per rotation since the last pass: deletion
  // keeps up with a pass that closed several segments, and a pass never
  // deletes more than it (or its predecessors) closed.
  int wait = -1;
  uint64_t now_real = realtime_us() / 1000;
  for (uint64_t budget = rotations_since_poll_ + 1; budget > 0; budget--) {
    if (!log_.retention_step(now_real, now_ms, &wait)) break;
    disk_check_now_ = true;
  }
  rotations_since_poll_ = 0;
  timeout = sooner(timeout, wait);
  timeout = sooner(timeout, check_disk(now_ms));

  // A failure is reported by the log (counted, logged, an error event); the
  // records stay unsynced and the next interval tries again, not sooner.
  log_.collect_background();
  uint32_t interval = live_.fsync_interval_ms.load(std::memory_order_relaxed);
  if (cfg_.fsync != FsyncPolicy::kInterval || log_.unsynced_records() == 0) return timeout;
  if (next_sync_ms_ == 0) next_sync_ms_ = log_.last_sync_ms() + interval;
  if (now_ms < next_sync_ms_) return sooner(timeout, static_cast<int>(next_sync_ms_ - now_ms));
  // A sync that takes longer than the interval is not doubled up: its end
  // wakes the writer (has_news()), and the next one starts then. Behind a
  // cache drop it is owed, and starts when the drop is collected.
  if (log_.sync_pending()) return timeout;
  log_.sync_in_background();
  next_sync_ms_ = now_ms + interval;
  return sooner(timeout, static_cast<int>(interval));
}

bool FileSink::has_news() const {
  // seq_cst: this is the writer's re-check after Notifier::prepare_sleep()'s
  // seq_cst store; an acquire load could be ordered before it and miss a wake-up.
  return news_.load(std::memory_order_seq_cst) || log_.background_finished();
}

void FileSink::archived(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(archived_mu_);
    archived_.push_back(path);
  }
  news_.store(true, std::memory_order_release);
  wake_.notify();
}

void FileSink::take_archived() {
  std::vector<std::string> paths;
  {
    std::lock_guard<std::mutex> lock(archived_mu_);
    paths.swap(archived_);
    news_.store(false, std::memory_order_relaxed);  // under the lock: a later push sets it again
  }
  for (const std::string& p : paths) log_.mark_archived(p);
}

// The disk-space guard. Returns ms until the next check is wanted (-1: none
// until something is written).
int FileSink::check_disk(uint64_t now_ms) {
  uint64_t min_free = live_.min_free_bytes.load(std::memory_order_relaxed);
  if (min_free == 0) {
    if (disk_low_) {  // turned off while low: resume
      disk_low_ = false;
      stats.disk_low.v.store(0, std::memory_order_relaxed);
      queue_.set_hold(false);
      events_.log(LogLevel::kInfo, "disk-space guard off (file.minFreeBytes = 0): reading messages again");
    }
    return -1;
  }
  bool due = disk_check_now_ || written_since_check_ >= min_free / 4 ||
             (now_ms >= next_disk_check_ms_ && (disk_low_ || written_since_check_ > 0));
  if (!due) {
    if (disk_low_ || written_since_check_ > 0) return static_cast<int>(next_disk_check_ms_ - now_ms);
    return -1;
  }
  disk_check_now_ = false;
  written_since_check_ = 0;
  next_disk_check_ms_ = now_ms + kDiskCheckMs;
  std::string dir = log_.directory();
  struct statvfs vfs;
  if (statvfs(dir.c_str(), &vfs) != 0) {
    if (statvfs_log_.allow(now_ms)) {
      events_.log(LogLevel::kWarn, "disk-space guard: cannot statvfs " + dir + ": " + strerror(errno));
    }
    return disk_low_ ? static_cast<int>(kDiskCheckMs) : -1;
  }
  uint64_t free_bytes = uint64_t(vfs.f_bavail) * uint64_t(vfs.f_frsize);
  if (!disk_low_ && free_bytes < min_free) {
    disk_low_ = true;
    stats.disk_low.v.store(1, std::memory_order_relaxed);
    stats.disk_guard_pauses.add();
    queue_.set_hold(true);
    if (disk_log_.allow(now_ms)) {
      events_.log(LogLevel::kWarn, "disk-space guard: " + std::to_string(free_bytes) + " bytes free on " + dir +
                                       ", below file.minFreeBytes = " + std::to_string(min_free) +
                                       ": not reading new messages until space is freed");
    }
  } else if (disk_low_ && free_bytes >= min_free + min_free / 8) {
    disk_low_ = false;
    stats.disk_low.v.store(0, std::memory_order_relaxed);
    queue_.set_hold(false);
    events_.log(LogLevel::kInfo, "disk-space guard: " + std::to_string(free_bytes) + " bytes free on " + dir +
                                     ": reading messages again");
  }
  return disk_low_ ? static_cast<int>(kDiskCheckMs) : -1;
}

// close() always ends with an fdatasync: it covers the last records and any
// cut-back of failed ones. A cache drop still in flight is applied too, so
// its failure is in the final stats.
void FileSink::drain() {
  log_.sync();
  log_.wait_for_background();
}

}  // namespace msgs
