// Clocks and thread names, shared by the engine threads.
#pragma once
#include <pthread.h>
#include <time.h>

#include <cstdint>
#include <thread>

namespace msgs {

// Precise: for spins and short intervals.
inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// Coarse (the last tick): for timers of milliseconds and more, without a vDSO clock read's cost.
inline uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

inline uint64_t realtime_us() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}

// Visible in /proc/<pid>/task/*/comm (at most 15 characters). Set by the
// creating thread, so the name is there as soon as start() returns.
inline void set_thread_name(std::thread& t, const char* name) { pthread_setname_np(t.native_handle(), name); }

}  // namespace msgs
