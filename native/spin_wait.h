// A short, bounded busy-wait before a thread goes to sleep on work that is
// due any moment: a service thread with a batch in flight waits for the
// writer's completion of it. When the completion shows up within the bound,
// the thread never sleeps, and the writer's notify() finds it not armed and
// skips the eventfd write: both sides save a wake-up, which on a virtual
// machine costs more than a small message's whole write. When it does not,
// the thread sleeps as before. An idle server has no batch in flight, so it
// never spins and uses no CPU.
//
// The writer does not spin for the next batch: measured, it cost more than it
// saved on 2 cores (a spinning writer holds the core that the load and the
// service thread need for the next message).
#pragma once
#include <time.h>

#include <cstdint>

namespace msgs {

// How long a service thread spins for the writer's completion of a batch in
// flight: a small write and the hand-back take a few microseconds; 50 us
// also covers a larger batch, and is short next to a scheduler time slice.
constexpr uint64_t kServiceSpinNs = 50 * 1000;

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// Spins until ready() or max_ns pass; returns ready()'s last answer.
template <class Ready>
bool spin_until(Ready&& ready, uint64_t max_ns) {
  uint64_t deadline = monotonic_ns() + max_ns;
  // No pause instruction: it is not portable, and under KVM a loop of pauses
  // triggers pause-loop exits that hand the vCPU away mid-spin.
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (ready()) return true;
    }
    if (monotonic_ns() >= deadline) return ready();
  }
}

}  // namespace msgs
