// Wake-up for a thread that sleeps on an eventfd (service loops, the writer).
// Producers call notify() after publishing work; it costs a syscall only when
// the sleeper has said it is going to sleep, so a busy thread is never
// interrupted per item.
#pragma once
#include <atomic>

namespace msgs {

class Notifier {
 public:
  Notifier();
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  int fd() const { return fd_; }

  // Any thread, after publishing work. True when the owner was asleep (or
  // about to be) and had to be woken.
  bool notify() {
    // seq_cst fence: the producer's publication (an acq_rel exchange or CAS)
    // must be ordered before the read of armed_ below, as the sleeper's
    // prepare_sleep() store is ordered before its re-check: Dekker needs
    // both sides in the single total order.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!armed_.exchange(false, std::memory_order_seq_cst)) return false;
    signal();
    return true;
  }
  // Unconditional wake (stop requests, rare events).
  void signal();

  // Owner thread: announce intent to sleep, then re-check for work, then wait.
  void prepare_sleep() { armed_.store(true, std::memory_order_seq_cst); }
  void cancel_sleep() { armed_.store(false, std::memory_order_relaxed); }
  // Owner thread: clears the eventfd counter after a wake-up.
  void drain();
  // Owner thread: waits until signalled or timeout_ms passes (-1: forever).
  void wait(int timeout_ms);

 private:
  int fd_;
  // true while the owner sleeps (or is about to); relaxed reads are never used.
  std::atomic<bool> armed_{false};
};

}  // namespace msgs
