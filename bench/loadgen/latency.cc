// The latency histogram's cold half: merging, quantiles, the summary.
#include "latency.h"

#include <cmath>

#include "clock.h"

namespace loadgen {

void LatencyHistogram::merge(const LatencyHistogram& o) {
  for (int i = 0; i < kBuckets; i++) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  max_ = std::max(max_, o.max_);
  min_ = std::min(min_, o.min_);
}

double LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return 0;
  uint64_t rank = uint64_t(std::ceil(q * double(count_)));
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; i++) {
    seen += counts_[i];
    if (seen >= rank) return std::min(std::max(midpoint(i), double(min())), double(max_));
  }
  return double(max_);
}

// The inverse of index(): bucket idx covers [m << shift, (m + 1) << shift).
double LatencyHistogram::midpoint(int idx) {
  if (idx < kExact) return idx;
  int shift = idx / kSub - 1;
  uint64_t m = uint64_t(idx - shift * kSub);
  double lo = double(m << shift), width = double(uint64_t(1) << shift);
  return lo + (width - 1) / 2;
}

LatencySummary summarize(const LatencyHistogram& h) {
  LatencySummary s;
  s.count = h.count();
  s.min_us = ns_to_us(double(h.min()));
  s.mean_us = ns_to_us(h.mean());
  s.p50_us = ns_to_us(h.quantile(0.50));
  s.p90_us = ns_to_us(h.quantile(0.90));
  s.p99_us = ns_to_us(h.quantile(0.99));
  s.p999_us = ns_to_us(h.quantile(0.999));
  s.max_us = ns_to_us(double(h.max()));
  return s;
}

}  // namespace loadgen
