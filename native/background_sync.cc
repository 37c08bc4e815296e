#include "background_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "time_util.h"

namespace msgs {

int datasync(int fd) {
  while (fdatasync(fd) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

int drop_cached(int fd, const CacheDrop& range) {
  int err = 0;
  if (range.write_to > range.write_from &&
      sync_file_range(fd, static_cast<off_t>(range.write_from), static_cast<off_t>(range.write_to - range.write_from),
                      SYNC_FILE_RANGE_WRITE) != 0) {
    err = errno;
  }
  if (range.drop_to > range.drop_from) {
    // posix_fadvise returns the error; it does not set errno.
    int e = posix_fadvise(fd, static_cast<off_t>(range.drop_from), static_cast<off_t>(range.drop_to - range.drop_from),
                          POSIX_FADV_DONTNEED);
    if (err == 0) err = e;
  }
  return err;
}

int BackgroundSync::run_job(const Job& job) {
  return job.drop ? drop_cached(job.fd, job.range) : datasync(job.fd);
}

void BackgroundSync::start() {
  stop_ = false;  // no thread yet: nothing else reads it
  thread_ = std::thread([this] { run(); });
  set_thread_name(thread_, "msgs-fsync");
}

void BackgroundSync::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();  // run() finishes a job it was given before it looks at stop_
}

void BackgroundSync::begin(int fd) { begin_job(Job{fd, false, {}}); }

void BackgroundSync::begin_drop(int fd, const CacheDrop& range) { begin_job(Job{fd, true, range}); }

void BackgroundSync::begin_job(const Job& job) {
  if (in_flight_) return;
  in_flight_ = true;
  if (!thread_.joinable()) {  // no thread to wait for: the job is done when this returns
    int err = run_job(job);
    std::lock_guard<std::mutex> lock(mu_);
    err_ = err;
    finished_.store(true, std::memory_order_seq_cst);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = job;
  }
  cv_.notify_all();
}

bool BackgroundSync::finish(int* err) {
  if (!in_flight_ || !finished()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  *err = err_;
  finished_.store(false, std::memory_order_relaxed);  // under mu_: the next sync sets it again
  in_flight_ = false;
  return true;
}

int BackgroundSync::wait() {
  if (!in_flight_) return -1;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return finished_.load(std::memory_order_relaxed); });
  finished_.store(false, std::memory_order_relaxed);
  in_flight_ = false;
  return err_;
}

void BackgroundSync::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return job_.fd >= 0 || stop_; });
    if (job_.fd < 0) return;
    Job job = job_;
    lock.unlock();
    int err = run_job(job);
    lock.lock();
    job_.fd = -1;
    err_ = err;
    finished_.store(true, std::memory_order_seq_cst);  // seq_cst: see finished()
    cv_.notify_all();  // a wait()
    done_.notify();    // a sleeping owner
  }
}

}  // namespace msgs
