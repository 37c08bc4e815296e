// Counters. Each is written by one thread only (relaxed increments of its own
// cache line) and read by the Node thread for stats(): values are monotone and
// may be a few microseconds stale, which is all a stats reader needs.
#pragma once
#include <atomic>
#include <cstdint>

#include "codec.h"

namespace msgs {

// relaxed everywhere: counters carry no synchronisation, only numbers.
struct Counter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  void set(uint64_t n) { v.store(n, std::memory_order_relaxed); }  // gauges
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

constexpr int kAckStatuses = wire::kAckStatusCount;
constexpr int kErrCodes = wire::kErrCodeCount;

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
  Counter tls_handshakes;     // TLS handshakes completed
  Counter tls_failures;       // TLS handshakes failed or timed out
  Counter handshakes_waiting; // gauge: handshakes deferred to the next loop pass now
  Counter handshake_waits;    // times a handshake step was deferred (per-pass bound)
  Counter auth_accepted;      // connections whose credentials were accepted
  Counter partial_waits;      // times a connection waited for limits.maxPartialFrameBytes
  Counter loop_errors;        // event-loop polls that failed (event_pass.h)
};

// The writer thread's own counters (the file's are LogFileStats).
struct alignas(64) WriterStats {
  Counter batches;            // service batches consumed
  Counter failed_records;     // records answered WRITE_FAILED
  Counter last_seq;           // last sequence number stored
};

// The log file's counters (log_file.h), written by the thread that owns it.
struct alignas(64) LogFileStats {
  Counter writes;             // pwrite loops that stored a buffer
  Counter records;            // records written
  Counter bytes;              // bytes written
  Counter fsyncs;
  Counter synced_records;     // records covered by a completed fdatasync
  Counter torn_bytes_cut;     // bytes truncated by recovery at start
  Counter rotations;          // segments closed
  Counter segments_deleted;   // closed segments deleted by retention
};

// The file sink's counters and gauges (writer thread).
struct alignas(64) FileSinkStats {
  Counter disk_guard_pauses;  // times ingest paused for low disk space (file.minFreeBytes)
  Counter disk_low;           // gauge, 0/1: paused for low disk space now
  Counter last_store_failed;  // gauge, 0/1: the most recent flush was not stored
};

// The JetStream sink's counters: written by the writer thread, except
// `acked`, `duplicates`, `in_process`, `failed` and `reconnects`, written by libnats threads
// (each by one thread: the ack subscription's or the connection-event one).
struct alignas(64) JetStreamStats {
  Counter published;          // messages handed to libnats
  Counter acked;              // publish acknowledgements with a stream sequence
  Counter duplicates;         // ...of which JetStream's duplicate window dropped
  Counter in_process;         // answers that an earlier attempt is still being proposed (sent again)
  Counter failed;             // error replies (no stream, no quorum, ...), in-process answers not retried
  Counter timeouts;           // no acknowledgement within ackTimeoutMs
  Counter unavailable;        // messages not published: not connected, or no stream
  Counter reconnects;
  Counter retries;            // publishes sent again after a failure that can pass (retryMs)
  Counter retry_exhausted;    // messages answered REPLICATION_FAILED once retryMs was spent
  Counter held;               // gauge: messages waiting for a resend or for the stream
};

// The arrays above are indexed by the wire codes: one counter per code.
static_assert(sizeof(ServiceStats::acks) / sizeof(Counter) == wire::kAckReplicationFailed + 1,
              "one ACK counter per status in codec.h");
static_assert(sizeof(ServiceStats::errors) / sizeof(Counter) == wire::kErrForbidden + 1,
              "one ERR counter per code in codec.h (index 0 unused)");

struct alignas(64) ListenerStats {
  Counter accepted;
  Counter rejected_busy;
  Counter rejected_not_ready; // refused while JetStream was not ready (whileNotReady 'refuse')
  Counter accept_errors;
  Counter loop_errors;        // event-loop polls that failed (event_pass.h)
};

}  // namespace msgs
