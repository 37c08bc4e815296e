// Latency histogram: every ACKed message's send -> ACK time goes in, so it
// must be cheap (record() is a shift, an add and two compares) and of fixed
// size (no allocation while the load runs). One per worker thread, merged
// when the run ends.
//
// HDR-style, in nanoseconds: values below kExact are counted exactly; above
// that each power of two is cut into kSub linear sub-buckets, so a bucket is
// at most 1/64 of its value wide (relative error < 1.6%). A quantile is
// reported at its bucket's midpoint, which halves that (< 0.8%).
#pragma once

#include <algorithm>
#include <cstdint>

#include "loadgen.h"

namespace loadgen {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;  // sub-buckets per power of two
  static constexpr int kExact = 2 * kSub;     // values below this have a bucket each
  // A value of bit length e + 1 (e >= kSubBits + 1) is shifted right by
  // e - kSubBits, keeping its top kSubBits + 1 bits: kSub..2*kSub-1.
  static constexpr int kMaxShift = 63 - kSubBits;
  static constexpr int kBuckets = (kMaxShift + 2) * kSub;  // the largest index is kMaxShift*kSub + 2*kSub - 1

  void record(uint64_t v) {
    counts_[index(v)]++;
    count_++;
    sum_ += v;
    if (v > max_) max_ = v;
    if (v < min_) min_ = v;
  }
  void merge(const LatencyHistogram& o);
  uint64_t count() const { return count_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  // The value at quantile q (0..1): the midpoint of the bucket holding it, clamped to [min, max].
  double quantile(double q) const;

 private:
  static int index(uint64_t v) {
    if (v < uint64_t(kExact)) return int(v);
    int e = 63 - __builtin_clzll(v);  // floor(log2 v), >= kSubBits + 1 here
    int shift = e - kSubBits;
    return shift * kSub + int(v >> shift);
  }
  static double midpoint(int idx);

  uint64_t counts_[kBuckets] = {0};
  uint64_t count_ = 0, sum_ = 0, max_ = 0, min_ = UINT64_MAX;
};

// The summary the results report, in microseconds.
LatencySummary summarize(const LatencyHistogram& h);

}  // namespace loadgen
