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

  // Any thread, after publishing work.
  void notify() {
    // seq_cst: must be ordered after the producer's publication and before
    // the sleeper's re-check (Dekker-style handshake with prepare_sleep()).
    if (armed_.exchange(false, std::memory_order_seq_cst)) signal();
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
