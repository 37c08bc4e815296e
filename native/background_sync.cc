#include "background_sync.h"

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
  thread_.join();  // run() finishes a sync it was given before it looks at stop_
}

void BackgroundSync::begin(int fd) {
  if (in_flight_) return;
  in_flight_ = true;
  if (!thread_.joinable()) {  // no thread to wait for: the sync is done when this returns
    int err = datasync(fd);
    std::lock_guard<std::mutex> lock(mu_);
    err_ = err;
    finished_.store(true, std::memory_order_seq_cst);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fd_ = fd;
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
    cv_.wait(lock, [this] { return fd_ >= 0 || stop_; });
    if (fd_ < 0) return;
    int fd = fd_;
    lock.unlock();
    int err = datasync(fd);
    lock.lock();
    fd_ = -1;
    err_ = err;
    finished_.store(true, std::memory_order_seq_cst);  // seq_cst: see finished()
    cv_.notify_all();  // a wait()
    done_.notify();    // a sleeping owner
  }
}

}  // namespace msgs
