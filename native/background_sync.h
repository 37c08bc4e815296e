// The log's disk work that no ACK waits for, on a thread of its own
// (BackgroundSync), so that the writer goes on appending meanwhile:
// - The interval sync (file.fsync 'interval'): done on the writer, that
//   fdatasync stopped every ACK for as long as the disk took a second's
//   worth of dirty pages (hundreds of ms under load). Redis's bio thread
//   does the same for appendfsync everysec. Syncs whose ACKs wait for them
//   (durable, 'batch') stay on the writer: there is nothing to overlap.
// - Dropping written pages from the page cache (file.dropCache,
//   drop_cached()): see there.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "notifier.h"

namespace msgs {

// Returns 0 or an errno. Only EINTR is retried: after any other failure the
// kernel may have dropped the pages, so a second try would prove nothing.
int datasync(int fd);

// A stretch of the log to take out of the page cache: writeback of
// [write_from, write_to) starts, and [drop_from, drop_to), whose writeback
// the previous job started, is dropped.
struct CacheDrop {
  uint64_t write_from, write_to, drop_from, drop_to;
};

// The log is written once and read rarely, so its pages only crowd the page
// cache: the machine's useful cache is evicted, dirty pages pile up until
// the kernel throttles the writer, and every new page must be found afresh
// (slow on a virtual machine, whose fresh pages come from the host).
// Started a chunk behind the writer and dropped one chunk later, the log's
// pages go back to the free lists, where the next writes find them; the
// dirty backlog stays at a couple of chunks, which also keeps the interval
// fdatasync short. PostgreSQL does the same with its WAL (sync_file_range,
// POSIX_FADV_DONTNEED). Neither call waits for the writeback to finish or
// collects its errors: sync_file_range's waits would consume a writeback
// error that the next fdatasync must report (errors are reported once per
// open file), and pages still being written are simply left cached. An
// error of the writeback itself is recorded on the file by the kernel (as
// for its own flusher) and reported by that fdatasync. Both calls are made;
// returns 0 or the first one's errno.
int drop_cached(int fd, const CacheDrop& range);

// One job at a time (an fdatasync or a cache drop), started and collected by
// one owner thread (the writer); `done` (the owner's notifier) is woken when
// one finishes.
class BackgroundSync {
 public:
  explicit BackgroundSync(Notifier& done) : done_(done) {}
  ~BackgroundSync() { stop(); }
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Owner, before the first begin() or begin_drop(): starts the thread
  // (msgs-fsync).
  void start();
  // Ends the thread once a job it was given is done (the engine's stop():
  // no engine thread outlives it). A job begun after stop() runs on the
  // caller's thread.
  void stop();
  // Owner: starts fdatasync(fd) unless a job is in flight. The fd must stay
  // open until the job is collected (finish() or wait()). Without the
  // thread (not started, or stopped) it runs here, before returning.
  void begin(int fd);
  // Owner: as begin(), for drop_cached(fd, range).
  void begin_drop(int fd, const CacheDrop& range);
  // Owner: a job was begun and not yet collected.
  bool in_flight() const { return in_flight_; }
  // Any thread: the job in flight has finished (the owner's wake-up check).
  bool finished() const {
    // seq_cst: the owner's re-check after Notifier::prepare_sleep(), as the
    // other has_news() flags.
    return finished_.load(std::memory_order_seq_cst);
  }
  // Owner: when the job in flight has finished, collects it: true, and
  // *err is 0 or its errno. False when none finished (or none in flight).
  bool finish(int* err);
  // Owner: waits for the job in flight and collects it. Returns its errno
  // (0 when it succeeded), or -1 when none was in flight.
  int wait();

 private:
  struct Job {
    int fd = -1;  // -1: no job
    bool drop = false;
    CacheDrop range{};
  };
  static int run_job(const Job& job);
  void begin_job(const Job& job);
  void run();

  Notifier& done_;
  std::thread thread_;
  bool in_flight_ = false;  // owner thread only
  // The hand-off, once per fsyncIntervalMs and once per 4 MiB written: a
  // mutex and a condition variable are cheap enough and carry the ordering
  // of job_ and err_.
  std::mutex mu_;
  std::condition_variable cv_;
  Job job_;     // guarded by mu_: the job waiting for the thread (fd -1: none)
  int err_ = 0;  // guarded by mu_: the finished job's result
  bool stop_ = false;  // guarded by mu_
  std::atomic<bool> finished_{false};  // set under mu_; see finished()
};

}  // namespace msgs
