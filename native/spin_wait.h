// A short, bounded busy-wait before a thread goes to sleep on work that is
// due any moment: a service thread with a batch in flight waits for the
// writer's completion of it. When the completion shows up within the bound,
// the thread never sleeps, and the writer's notify() finds it not armed and
// skips the eventfd write: both sides save a wake-up, which on a virtual
// machine costs more than a small message's whole write. When it does not,
// the thread sleeps as before. An idle server has no batch in flight, so it
// never spins and uses no CPU. The service thread spins only while the
// writer was awake when the batch went out (a writer that must be woken
// first comes back later than any spin, and the spinning thread holds the
// core it would wake on), and only while completions usually come back
// within the spin (SpinPolicy): with many connections a service thread has
// sockets to read instead, and a spin would take their core.
//
// The writer, after a small pass, spins for the next batch: at one
// synchronous connection the next batch comes one round trip later, and a
// sleeping writer turns every message into one more cross-thread wake-up
// (measured: p50 halves). Spinning costs a core while it lasts, so the
// writer does not spin after a large pass (its wake-up is shared by many
// messages, and the service threads need the core), and whether to spin at
// all is learnt from the gaps (SpinPolicy): a writer whose work arrives
// sparsely sleeps at once.
//
// A spinner yields its core after every round of polls: the thread it waits
// for (the service thread that reads the next message, the writer that
// completes the batch) can be queued behind it on the same core, and then
// gets the core at the next yield, within one round, instead of when the
// spin ends. On 2 cores that queueing happened in some runs and not others,
// and put a spin's length into the p99 of one synchronous connection
// (measured: p99 50-150 us from run to run, 55-70 us with the yield). With
// nothing else runnable sched_yield() returns at once; a yield to unrelated
// work can cost the spinner that work's time slice, as a sleep would.
#pragma once
#include <sched.h>

#include <cstddef>
#include <cstdint>

#include "time_util.h"

namespace msgs {

// How long a service thread spins for the writer's completion of a batch in
// flight: a small write and the hand-back take a few microseconds; 50 us
// also covers a larger batch, and is short next to a scheduler time slice.
constexpr uint64_t kServiceSpinNs = 50 * 1000;

// How long the writer spins for the next batch after a pass that took some:
// a little over one loopback round trip with its wake-ups.
constexpr uint64_t kWriterSpinNs = 100 * 1000;
// The writer spins only after a pass of at most this many messages: beyond
// it, one wake-up per pass costs each message little.
constexpr size_t kWriterSpinMaxMsgs = 64;

// Spins until ready() or max_ns pass; returns ready()'s last answer.
template <class Ready>
bool spin_until(Ready&& ready, uint64_t max_ns) {
  uint64_t deadline = monotonic_ns() + max_ns;
  // No pause instruction: it is not portable, and under KVM a loop of pauses
  // triggers pause-loop exits that hand the vCPU away mid-spin. The yield
  // gives the core to a thread queued on it (see above); it is a plain
  // system call, no VM exit.
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (ready()) return true;
    }
    sched_yield();
    if (monotonic_ns() >= deadline) return ready();
  }
}

// Whether to spin at all is learnt from how long the owner thread usually
// waits for its next work: a running average of the gaps (each capped at
// four spins' length, so one long pause does not switch spinning off for
// long). While the typical gap is longer than a spin, spinning would only
// burn the core before sleeping anyway, so the thread sleeps at once: steady
// light load costs no spinning, and an idle thread none. One owner thread.
class SpinPolicy {
 public:
  explicit SpinPolicy(uint64_t max_ns) : max_ns_(max_ns) {}

  // Owner thread, out of work: spins while work usually comes back within
  // max_ns; true when ready() became true meanwhile.
  template <class Ready>
  bool spin(Ready&& ready) {
    idle_since_ns_ = monotonic_ns();
    if (typical_gap_ns_ > max_ns_) return false;
    return spin_until(ready, max_ns_);
  }
  // Owner thread, when work arrives (after spin() or after a sleep).
  void arrived() {
    if (idle_since_ns_ == 0) return;
    uint64_t gap = monotonic_ns() - idle_since_ns_;
    if (gap > 4 * max_ns_) gap = 4 * max_ns_;
    typical_gap_ns_ = typical_gap_ns_ - typical_gap_ns_ / 8 + gap / 8;
    idle_since_ns_ = 0;
  }

 private:
  const uint64_t max_ns_;
  uint64_t idle_since_ns_ = 0;   // when the thread ran out of work; 0: it has work
  uint64_t typical_gap_ns_ = 0;  // running average of the gaps until the next work
};

}  // namespace msgs
