// The load engine's one clock (steady, in nanoseconds) and the unit
// conversions its plan and its results use.
#pragma once

#include <chrono>
#include <cstdint>

namespace loadgen {

constexpr int64_t kNsPerUs = 1000;
constexpr int64_t kNsPerMs = 1000 * kNsPerUs;
constexpr double kMsPerSec = 1e3;
constexpr double kBytesPerMB = 1e6;  // results count MB as 10^6 bytes (lib/bench/bench.ts)

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t ms_to_ns(uint32_t ms) { return int64_t(ms) * kNsPerMs; }
inline double ns_to_ms(int64_t ns) { return double(ns) / double(kNsPerMs); }
inline double ns_to_us(double ns) { return ns / double(kNsPerUs); }

}  // namespace loadgen
