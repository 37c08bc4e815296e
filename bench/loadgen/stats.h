// Accounting: what one worker thread counts while the load runs (plain
// fields: only that thread writes them; the others read them after join),
// the few live figures the progress thread reads meanwhile (atomics), the
// error samples all threads share (a mutex: errors are rare), and how the
// workers' counts add up to the LoadResult.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "latency.h"
#include "loadgen.h"

namespace loadgen {

// Why a connection failed or a message did not count; one LoadResult field each.
enum class ErrorKind : uint8_t { kConnect, kAckMismatch, kBadStatus, kServerError, kClosedEarly, kTimeout };
constexpr int kErrorKinds = int(ErrorKind::kTimeout) + 1;

struct WorkerStats {
  LatencyHistogram latency;     // per message, send -> its ACK read
  uint64_t sent = 0;            // messages fully written
  uint64_t acked_ok = 0;        // messages ACKed with status OK
  uint64_t wire_bytes = 0;      // every byte written, HELLO included
  uint64_t payload_acked = 0;
  uint64_t ack_frames = 0;
  uint64_t errors[kErrorKinds] = {0};
  uint64_t unacked = 0;         // messages written on connections that failed before their ACK
  uint32_t conns_ok = 0, conns_failed = 0;
  int64_t end_ns = 0;           // when the last of its connections finished

  uint64_t& error(ErrorKind k) { return errors[int(k)]; }
  uint64_t error(ErrorKind k) const { return errors[int(k)]; }
  uint64_t error_total() const;
  // Adds these counts to r (not the latency: histograms merge first).
  void add_to(LoadResult* r) const;
};

// A worker's figures for the progress callback, published once per loop turn.
struct LiveProgress {
  // relaxed: each figure is shown on its own and no other data is published
  // through them; the progress thread may see a slightly old mix.
  std::atomic<uint64_t> sent{0}, acked{0}, errors{0};
  std::atomic<uint32_t> open{0};  // relaxed, as above
  // Set last by the worker thread (release), polled by the thread that runs
  // LoadGen::run (acquire) to know when to stop reporting progress and join.
  // The final figures are read after join, which orders them by itself.
  std::atomic<bool> finished{false};

  void publish(const WorkerStats& s, uint32_t open_conns);
  void add_to(Progress* p) const;
};

// The first few error messages of the run, from all its threads.
class ErrorSamples {
 public:
  static constexpr size_t kMax = 8;
  void add(const std::string& s);
  std::vector<std::string> take();

 private:
  std::mutex mu_;
  std::vector<std::string> samples_;
};

// The fields of r that follow from the counts: total errors, elapsed time and rates.
void set_rates(LoadResult* r, int64_t elapsed_ns);

}  // namespace loadgen
