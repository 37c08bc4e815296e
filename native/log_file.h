// The log on disk: one file, or (with rotation) a directory of segment files
// named by the sequence number of their first record. Opening recovers the
// tail; appending is one pwrite loop; a failed append is cut back so the
// file stays valid; rotation closes a synced segment and starts the next.
// Knows bytes and records, not batches or ACKs (the file sink adds those),
// so it can be tested alone (test/native/test_log_file.cc). Every failed
// system call goes through IoErrors. Used by one thread at a time: the Node
// thread for open(), then the writer thread (the interval sync and the cache
// drops run on a BackgroundSync, but their outcomes are applied here, by the
// writer).
#pragma once
#include <cstdint>
#include <deque>
#include <string>

#include "background_sync.h"
#include "config.h"
#include "events.h"
#include "io_errors.h"
#include "stats.h"

namespace msgs {

// A closed segment of a rotating log: complete, synced, never written again.
struct ClosedSegment {
  std::string path;
  uint64_t first_seq;
  uint64_t last_seq;
  uint64_t bytes;
  uint64_t closed_ms;  // wall clock (ms since the epoch): at close, or the file's mtime when found at start
  bool archived;       // the host said its archive hooks are done with it (afterArchive)
};

class LogFile {
 public:
  // `live`: the retention bounds (file.retention), which can change while
  // the log is open. Read by the writer thread only. `background`: where
  // sync_in_background() runs its fdatasync (null: on the caller's thread)
  // and where, with cfg.drop_cache, written pages leave the page cache
  // (null: they stay).
  LogFile(const FileConfig& cfg, const LiveSettings& live, Events& events, IoErrors& io,
          BackgroundSync* background = nullptr);
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  // Opens (creating it if needed) the file, or the last segment of the
  // directory, and recovers its tail: a torn binary tail or a partial text
  // line is cut (logged, RecoveredEvent); corruption followed by valid
  // records throws unless cfg.repair, which sets the damaged file aside.
  // Returns the last sequence number in the log (0 for a new one, or for
  // text, which has none; for an empty segment, its first sequence number
  // - 1; after a repair, the highest found in the damaged file). Throws
  // runtime_error with a message fit for the user ("cannot open x:
  // Permission denied"); such a failure is not also reported through
  // IoErrors. Failures that do not stop the start (a directory sync) are.
  // Called once; `cfg` is kept by reference and must outlive this.
  uint64_t open();

  // Appends `len` bytes holding `records` whole records; with cfg.drop_cache,
  // every kDropChunkBytes written (more while the BackgroundSync is busy)
  // start a cache drop on it (drop_cached(); a failure is reported as
  // IoOp::kWriteback, and only the page cache is the worse for it). On
  // failure the file is cut back to where it was (so it stays valid), the failure is
  // reported with `records` messages answered WRITE_FAILED, and false
  // returned. If that cut fails too (reported), every later append() and
  // rotate() first retries it, and fails while it fails: nothing is written
  // behind failed records, which could read back as records.
  bool append(const uint8_t* data, size_t len, uint64_t records);
  // fdatasync. On failure: reported, false. The records appended since the
  // last good sync leave unsynced_records() without entering
  // stats.synced_records: whether they reached the disk is not known, and a
  // later fsync that succeeds proves nothing about them (Linux reports a
  // writeback error once; see docs/durability.md). last_sync_ms() stays the
  // time of the last good sync (for a background one: when it was applied).
  // `answered_failed`: messages the caller answers WRITE_FAILED when this
  // sync fails (a durable flush), for the report.
  // A background sync in flight is waited for first (and applied); a cache
  // drop in flight is not.
  bool sync(uint64_t answered_failed = 0);
  // The interval sync: starts an fdatasync of what is written so far on the
  // BackgroundSync, unless one is in flight, and returns at once; appends go
  // on meanwhile. It covers the records unsynced when it began. Behind a
  // cache drop in flight it is owed instead, and collect_background() starts
  // it when the drop is done, before any further drop. Its outcome is
  // applied by collect_background(), or by sync(), rotate() or the
  // destructor, which wait for it first (the fd stays open until then).
  // Without a BackgroundSync: sync().
  void sync_in_background();
  // A background sync is in flight or owed: the next is not due yet.
  bool sync_pending() const { return sync_owed_ || (background_busy() && !background_drop_); }
  // Applies a finished background job: a sync as sync() applies its own
  // (the records it covered counted synced, or the failure reported), a
  // cache drop's failure reported; then starts an owed sync, or after a
  // good sync, with cfg.drop_cache, a drop of every page it made clean
  // (pages a chunk's drop found still being written, and the tail since
  // the last chunk). False when none has finished.
  bool collect_background();
  // Waits for the background job in flight, if any, and applies it (the
  // drain at stop: its outcome is in the final stats).
  void wait_for_background();
  // A background job (sync or cache drop) was started and is not applied
  // yet; a sync that falls due meanwhile waits for it.
  bool background_busy() const { return background_ && background_->in_flight(); }
  // Any thread: the background job in flight has finished (collect_background()
  // has work; the writer's wake-up check).
  bool background_finished() const { return background_ && background_->finished(); }
  // Takes the last `len` bytes (`records` records) back out after their
  // sync failed and they were answered WRITE_FAILED. `stats` keep them:
  // they count what was written.
  void cut_back(uint64_t len, uint64_t records);

  bool rotating() const { return rotating_; }
  // The size bound: appending `buffered` bytes and then a record of
  // `next_record` bytes would pass rotateBytes (a segment always takes at
  // least one record, however large). After a failed rotate(), neither
  // bound is due again for a second.
  bool rotation_due(uint64_t buffered, size_t next_record) const;
  // The age bound: the segment holds records and is older than rotateMs.
  // Returns true when due; otherwise sets *wait_ms to the time left (or -1).
  bool rotation_due_by_age(uint64_t now_ms, int* wait_ms) const;
  // Syncs and closes the active segment and starts the next one, named
  // after `next_seq`, header synced and name durable. If the old segment
  // cannot be synced, or the new one made, writing goes on in the old one
  // (reported; a half-made new segment is deleted). The closed segment is
  // reported (SegmentClosedEvent) and joins closed_segments().
  void rotate(uint64_t next_seq);

  // ---- retention (file.retention; rotating logs only) ----
  // The oldest closed segments beyond any bound are deleted, oldest first,
  // at most one per call, so that the caller (the writer's poll()) never
  // spends more than one unlink between two flushes. The active segment is
  // never deleted. maxBytes counts every segment, the active one included;
  // maxSegments counts the segment files, the active one included; maxAgeMs
  // is the time since a segment was closed. With afterArchive a segment is
  // deleted only once mark_archived() named it, and the segments after it
  // wait too (the retained log stays contiguous). A failed unlink is
  // reported (IoOp::kDelete) and retried a second later.
  // Returns true when it deleted a segment. *wait_ms: 0 when more is due
  // now, else the ms until the oldest segment ages out (or a retry), or -1.
  bool retention_step(uint64_t now_real_ms, uint64_t now_mono_ms, int* wait_ms);
  // The host's archive hooks finished with this closed segment.
  void mark_archived(const std::string& path);
  const std::deque<ClosedSegment>& closed_segments() const { return closed_; }
  // The directory the log lives in (the segment directory when rotating).
  std::string directory() const;

  uint64_t unsynced_records() const { return unsynced_records_; }
  uint64_t last_sync_ms() const { return last_sync_ms_; }
  uint64_t size() const { return offset_; }  // end of the last good record
  const std::string& path() const { return path_; }

  LogFileStats stats;

  // With cfg.drop_cache, a cache drop starts once this much more is written.
  static constexpr uint64_t kDropChunkBytes = 4 << 20;
  // The page cache keeps a file in folios of up to 2 MiB, and a drop takes
  // only the folios wholly inside its range: each drop starts at this
  // boundary below where the last one ended, so the folio that straddled
  // it goes too.
  static constexpr uint64_t kDropAlignBytes = 2 << 20;

 private:
  void open_file(const std::string& path);
  void open_segments();
  void refuse_file_as_directory();
  void add_closed(ClosedSegment&& seg);
  const char* retention_reason(uint64_t now_real_ms, int* wait_ms) const;
  void start_file();
  void recover(uint64_t size);
  void recover_text(uint64_t size);
  void set_aside_damaged(uint64_t bad_offset, uint64_t max_seq);
  void recovered(const std::string& line, RecoveredEvent&& ev);
  bool cut_tail(uint64_t records, const std::string& consequence);
  void synced(uint64_t records);
  void start_background_sync();
  void start_drop(const CacheDrop& range);
  void drop_cache_behind();
  void sweep_cache();
  void drop_file_cache();
  void reset_cache_marks();
  void settle_background(int err);
  void sync_failed(int err, uint64_t answered_failed, const std::string& also);
  void postpone_rotation();
  int sync_dir(const std::string& path);
  void close_fd(int fd, const std::string& path);

  const FileConfig& cfg_;
  const LiveSettings& live_;
  Events& events_;
  IoErrors& io_;
  BackgroundSync* const background_;
  uint64_t background_records_ = 0;  // unsynced when the background sync in flight began
  bool background_drop_ = false;     // the job in flight is a cache drop
  bool sync_owed_ = false;           // an interval sync waits for the drop in flight
  const bool drop_cache_;            // cfg.drop_cache and a BackgroundSync to do it
  uint64_t written_back_to_ = 0;     // the active file's writeback started up to here
  uint64_t dropped_to_ = 0;          // and its pages dropped up to here
  uint64_t swept_to_ = 0;            // every page up to here dropped after a sync (sweep_cache())
  uint64_t sync_end_ = 0;            // offset_ when the background sync in flight began
  bool text_;
  bool rotating_;
  std::string dir_;
  std::string path_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  uint64_t last_seq_ = 0;           // found by open()
  uint64_t segment_opened_ms_ = 0;
  uint64_t segment_records_ = 0;
  uint64_t unsynced_records_ = 0;
  uint64_t last_sync_ms_ = 0;
  bool tail_dirty_ = false;         // a failed cut left failed records after offset_
  uint64_t rotate_retry_ms_ = 0;    // after a failed rotation: no bound due before
  uint64_t segment_first_seq_ = 0;  // the active segment's name
  std::deque<ClosedSegment> closed_;  // oldest first
  uint64_t closed_bytes_ = 0;
  uint64_t delete_retry_ms_ = 0;    // after a failed unlink: no deletion before (monotonic)
};

}  // namespace msgs
