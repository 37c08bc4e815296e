// Counters. Each is written by one thread only (relaxed increments of its own
// cache line) and read by the Node thread for stats(): values are monotone and
// may be a few microseconds stale, which is all a stats reader needs.
#pragma once
#include <atomic>
#include <cstdint>

namespace msgs {

// relaxed everywhere: counters carry no synchronisation, only numbers.
struct Counter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

constexpr int kAckStatuses = 5;
constexpr int kErrCodes = 13;

struct alignas(64) ServiceStats {
  Counter connections;        // open now (owned by this thread)
  Counter accepted;           // handed to this thread
  Counter messages_in;
  Counter bytes_in;           // socket bytes read
  Counter acks[kAckStatuses]; // messages acknowledged, by status
  Counter ack_frames;
  Counter errors[kErrCodes];  // ERR frames sent, by code
  Counter batches_pushed;
  Counter paused;             // times reading stopped for a full queue
  Counter read_calls;
  Counter inflight_pauses;    // times a connection hit maxInflightBytesPerConnection
};

struct alignas(64) WriterStats {
  Counter batches;            // service batches consumed
  Counter writes;             // write() calls that stored a batch
  Counter records;            // records written
  Counter bytes;              // bytes written to the file
  Counter fsyncs;
  Counter synced_records;     // records covered by a completed fdatasync
  Counter write_errors;
  Counter failed_records;     // records answered WRITE_FAILED
  Counter last_seq;
  Counter torn_bytes_cut;     // bytes truncated by recovery at start
  Counter rotations;          // segments closed
  // Time of each write (+ its fdatasync when the policy syncs per batch), in
  // microseconds: bucket i counts writes that took < 2^i us (the last: more).
  static constexpr int kLatencyBuckets = 24;
  Counter write_latency[kLatencyBuckets];
};

// The JetStream sink's counters: written by the writer thread, except
// `acked`, `duplicates`, `failed` and `reconnects`, written by libnats threads
// (each by one thread: the ack subscription's or the connection-event one).
struct alignas(64) JetStreamStats {
  Counter published;          // messages handed to libnats
  Counter acked;              // publish acknowledgements with a stream sequence
  Counter duplicates;         // ...of which JetStream's duplicate window dropped
  Counter failed;             // error replies (no stream, no quorum, ...)
  Counter timeouts;           // no acknowledgement within ackTimeoutMs
  Counter unavailable;        // messages not published: not connected, or no stream
  Counter reconnects;
};

struct alignas(64) ListenerStats {
  Counter accepted;
  Counter rejected_busy;
  Counter accept_errors;
};

}  // namespace msgs
