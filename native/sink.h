// Where the writer thread sends what it takes: the log file, the JetStream
// stream, the message hooks. The writer numbers the messages, frames them
// into one buffer of binary records and, at each flush, hands that buffer to
// every sink in order (file first: what it failed to store goes nowhere
// else). A sink sees whole flushes, never single messages, so the hot path
// makes one virtual call per sink per flush.
#pragma once
#include <cstdint>
#include <vector>

#include "batch.h"

namespace msgs {

// Messages [begin, end) of a batch, in the flush's order.
struct Span {
  Batch* batch;
  uint32_t begin, end;
};

// One flush: the messages still pending (status kPending) in `spans`,
// numbered first_seq, first_seq + 1, ... in span order.
struct Flush {
  const std::vector<Span>* spans;
  uint64_t first_seq;
  uint32_t count;            // pending messages in the spans
  const uint8_t* records;    // their binary records, back to back
  size_t bytes;
  // Set by the file sink: kAckWriteFailed when the buffer was not stored.
  // A sink after it stores nothing from a failed flush.
  uint8_t status;
};

// A status a sink gives a message whose outcome comes later (a JetStream
// acknowledgement): the writer leaves it alone, and the batch goes back to
// its service thread only once batch->awaiting is 0.
constexpr uint8_t kDecidedLater = 0xfe;

class Sink {
 public:
  virtual ~Sink() = default;

  // Node thread, before the writer starts. Throws runtime_error with a
  // message fit for the user.
  virtual void open() = 0;

  // True when store() reads f.records, the binary records. The writer
  // encodes them only when some sink does (a text file encodes its own
  // lines; the hooks copy from the batches). Asked once, at start.
  virtual bool reads_records() const { return false; }

  // True when split_before() can ever say yes (asked once, at start, so the
  // writer asks split_before() per message only of the sinks that split).
  virtual bool splits() const { return false; }

  // --- writer thread ---
  // The next record (`next_record` bytes, with `buffered` bytes already in
  // the buffer) must start a new flush: the file's segment is full.
  virtual bool split_before(uint64_t buffered, size_t next_record) const { return false; }
  // Something is due on the clock (a segment's age): flush, then boundary().
  virtual bool boundary_due(uint64_t now_ms, int* wait_ms) const { return false; }
  // After the flush split_before() or boundary_due() asked for.
  virtual void boundary(uint64_t next_seq) {}
  virtual void store(Flush& f) = 0;
  // Timers and outcomes that arrived: interval fsyncs, JetStream
  // acknowledgements and timeouts. Returns ms until the next is due, or -1.
  virtual int poll(uint64_t now_ms) { return -1; }
  // Work for poll() arrived from another thread: the writer must not sleep.
  virtual bool has_news() const { return false; }
  // Stopping: everything is flushed; settle what is still open (sync the
  // file, settle every publish).
  virtual void drain() {}
};

}  // namespace msgs
