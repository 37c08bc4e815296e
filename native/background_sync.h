// fdatasync, on the caller's thread (datasync()) or on a thread of its own
// (BackgroundSync). The interval sync (file.fsync 'interval') runs on its
// own thread so that the writer goes on appending while the disk takes a
// second's worth of dirty pages: done on the writer, that fdatasync stopped
// every ACK for as long as it took (hundreds of ms under load). Redis's bio
// thread does the same for appendfsync everysec. Syncs whose ACKs wait for
// them (durable, 'batch') stay on the writer: there is nothing to overlap.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "notifier.h"

namespace msgs {

// Returns 0 or an errno. Only EINTR is retried: after any other failure the
// kernel may have dropped the pages, so a second try would prove nothing.
int datasync(int fd);

// One fdatasync at a time, started and collected by one owner thread (the
// writer); `done` (the owner's notifier) is woken when one finishes.
class BackgroundSync {
 public:
  explicit BackgroundSync(Notifier& done) : done_(done) {}
  ~BackgroundSync() { stop(); }
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Owner, before the first begin(): starts the thread (msgs-fsync).
  void start();
  // Ends the thread once a sync it was given is done (the engine's stop():
  // no engine thread outlives it). A sync begun after stop() runs on the
  // caller's thread.
  void stop();
  // Owner: starts fdatasync(fd) unless one is in flight. The fd must stay
  // open until the sync is collected (finish() or wait()). Without the
  // thread (not started, or stopped) it syncs here, before returning.
  void begin(int fd);
  // Owner: a sync was begun and not yet collected.
  bool in_flight() const { return in_flight_; }
  // Any thread: the sync in flight has finished (the owner's wake-up check).
  bool finished() const {
    // seq_cst: the owner's re-check after Notifier::prepare_sleep(), as the
    // other has_news() flags.
    return finished_.load(std::memory_order_seq_cst);
  }
  // Owner: when the sync in flight has finished, collects it: true, and
  // *err is 0 or its errno. False when none finished (or none in flight).
  bool finish(int* err);
  // Owner: waits for the sync in flight and collects it. Returns its errno
  // (0 when it succeeded), or -1 when none was in flight.
  int wait();

 private:
  void run();

  Notifier& done_;
  std::thread thread_;
  bool in_flight_ = false;  // owner thread only
  // The hand-off, at most once per fsyncIntervalMs: a mutex and a condition
  // variable are cheap enough and carry the ordering of fd_ and err_.
  std::mutex mu_;
  std::condition_variable cv_;
  int fd_ = -1;  // guarded by mu_: the job, -1 when none is waiting
  int err_ = 0;  // guarded by mu_: the finished job's result
  bool stop_ = false;  // guarded by mu_
  std::atomic<bool> finished_{false};  // set under mu_; see finished()
};

}  // namespace msgs
