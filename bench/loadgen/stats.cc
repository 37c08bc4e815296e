// Accounting: see stats.h.
#include "stats.h"

#include "clock.h"

namespace loadgen {

// A run of 0 ms still divides by something.
constexpr double kMinSeconds = 1e-9;

uint64_t WorkerStats::error_total() const {
  uint64_t n = 0;
  for (uint64_t e : errors) n += e;
  return n;
}

void WorkerStats::add_to(LoadResult* r) const {
  r->messages_sent += sent;
  r->messages_acked += acked_ok;
  r->wire_bytes_sent += wire_bytes;
  r->payload_bytes_acked += payload_acked;
  r->ack_frames += ack_frames;
  r->connect_errors += error(ErrorKind::kConnect);
  r->ack_mismatches += error(ErrorKind::kAckMismatch);
  r->bad_status += error(ErrorKind::kBadStatus);
  r->server_errors += error(ErrorKind::kServerError);
  r->closed_early += error(ErrorKind::kClosedEarly);
  r->timeouts += error(ErrorKind::kTimeout);
  r->messages_unacked += unacked;
  r->connections_ok += conns_ok;
  r->connections_failed += conns_failed;
}

void LiveProgress::publish(const WorkerStats& s, uint32_t open_conns) {
  // relaxed: see the fields.
  sent.store(s.sent, std::memory_order_relaxed);
  acked.store(s.acked_ok, std::memory_order_relaxed);
  errors.store(s.error_total(), std::memory_order_relaxed);
  open.store(open_conns, std::memory_order_relaxed);
}

void LiveProgress::add_to(Progress* p) const {
  // relaxed: see the fields.
  p->sent += sent.load(std::memory_order_relaxed);
  p->acked += acked.load(std::memory_order_relaxed);
  p->errors += errors.load(std::memory_order_relaxed);
  p->connections_open += open.load(std::memory_order_relaxed);
}

void ErrorSamples::add(const std::string& s) {
  std::lock_guard<std::mutex> g(mu_);
  if (samples_.size() < kMax) samples_.push_back(s);
}

std::vector<std::string> ErrorSamples::take() {
  std::lock_guard<std::mutex> g(mu_);
  return std::move(samples_);
}

void set_rates(LoadResult* r, int64_t elapsed_ns) {
  r->errors = r->connect_errors + r->ack_mismatches + r->bad_status + r->server_errors + r->closed_early + r->timeouts;
  r->elapsed_ms = ns_to_ms(elapsed_ns);
  double secs = r->elapsed_ms > 0 ? r->elapsed_ms / kMsPerSec : kMinSeconds;
  r->msgs_per_sec = double(r->messages_acked) / secs;
  r->wire_mb_per_sec = double(r->wire_bytes_sent) / secs / kBytesPerMB;
  r->payload_mb_per_sec = double(r->payload_bytes_acked) / secs / kBytesPerMB;
}

}  // namespace loadgen
