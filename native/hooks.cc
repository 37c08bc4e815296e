#include "hooks.h"

namespace msgs {

void HookChannel::configure(bool enabled, bool block, uint64_t max_bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    block_ = block;
    max_bytes_ = max_bytes;
    shutdown_ = false;
  }
  enabled_.store(enabled, std::memory_order_relaxed);
  cv_.notify_all();  // a blocked writer re-checks (hooks removed: stop waiting)
}

bool HookChannel::reserve(uint64_t budget, uint64_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  // A batch bigger than the whole budget is let through alone rather than
  // never: the budget bounds the backlog, not single batches.
  auto fits = [&] { return used_ == 0 || used_ + budget <= max_bytes_; };
  if (!fits()) {
    if (!block_) {
      dropped.add(n);
      return false;
    }
    blocked.add();
    cv_.wait(lock, [&] { return fits() || shutdown_ || !enabled_.load(std::memory_order_relaxed); });
    if (!fits()) {  // stopping, or the hooks were removed while we waited
      dropped.add(n);
      return false;
    }
  }
  used_ += budget;
  return true;
}

void HookChannel::deliver(HookBatch* b) {
  uint64_t n = b->msgs.size();
  uint64_t budget = b->budget;
  if (!sink_ || !sink_(b)) {  // the host is going away: nobody will see it
    delete b;
    release(budget);
    dropped.add(n);
    return;
  }
  delivered.add(n);
}

void HookChannel::release(uint64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    used_ -= bytes;
  }
  cv_.notify_all();
}

void HookChannel::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

}  // namespace msgs
