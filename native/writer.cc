#include "writer.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "codec.h"
#include "record.h"
#include "time_util.h"

namespace msgs {

namespace {

// The shorter of two waits, where -1 means none.
int sooner(int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return std::min(a, b);
}

constexpr size_t kBufferSlack = 64 * 1024;  // room beyond batch.maxBytes for the record that crosses it

}  // namespace

Writer::Writer(const BatchConfig& cfg, SharedQueue& queue, CompletionRoute& route, Notifier& wake,
               std::vector<Sink*> sinks)
    : cfg_(cfg), queue_(queue), route_(route), wake_(wake), sinks_(std::move(sinks)) {
  framing_ = std::any_of(sinks_.begin(), sinks_.end(), [](const Sink* s) { return s->reads_records(); });
  if (framing_) ensure_capacity(cfg_.max_bytes + kBufferSlack);
}

Writer::~Writer() {
  join();
  std::free(buf_);
}

void Writer::start(uint64_t last_seq) {
  for (Sink* s : sinks_) {
    if (s->splits()) splitters_.push_back(s);
  }
  seq_ = last_seq;
  stats.last_seq.v.store(seq_, std::memory_order_relaxed);
  thread_ = std::thread([this] { run(); });
  set_thread_name(thread_, "msgs-writer");
}

void Writer::request_stop() {
  stop_.store(true, std::memory_order_release);
  wake_.signal();
}

void Writer::join() {
  if (thread_.joinable()) thread_.join();
}

// ---------------------------------------------------------------------------

void Writer::run() {
  for (;;) {
    bool took = false;
    size_t took_msgs = 0;
    while (Batch* b = queue_.pop()) {
      if (!took) spin_.arrived();
      took = true;
      took_msgs += b->msgs.size();
      take(b);
    }
    uint64_t now = monotonic_ms();
    int timeout = poll_sinks(now);
    if (buffered_msgs_ > 0 || !ready_.empty()) {
      if (cfg_.max_delay_ms == 0 || now - first_ms_ >= cfg_.max_delay_ms) {
        flush();
      } else {
        timeout = sooner(timeout, static_cast<int>(first_ms_ + cfg_.max_delay_ms - now));
      }
    }
    for (Sink* s : sinks_) {  // a boundary on the clock (a segment's age)
      int wait = -1;
      if (s->boundary_due(now, &wait)) {
        flush();
        s->boundary(seq_ + 1);
      } else {
        timeout = sooner(timeout, wait);
      }
    }
    // acquire: pairs with request_stop(); every service thread has exited, so
    // an empty queue now stays empty.
    if (stop_.load(std::memory_order_acquire) && queue_.empty()) {
      flush();
      for (Sink* s : sinks_) s->drain();  // sync the file, settle every publish
      complete_ready();
      break;
    }
    // The flushes above may have published: sleep no longer than the oldest
    // publish may wait for its acknowledgement.
    timeout = sooner(timeout, poll_sinks(monotonic_ms()));
    // After a small pass, the next batch is likely one round trip away and
    // a wake-up is a large share of each message's cost: a short spin saves
    // it (spin_wait.h). After a larger pass the writer sleeps at once: its
    // wake-up is spread over many messages, and a spin would hold a core the
    // service threads need. A sink's news ends the spin too; a timer or a
    // stop waits at most kWriterSpinNs longer.
    if (took && took_msgs <= kWriterSpinMaxMsgs &&
        spin_.spin([this] { return work_due(); })) {
      continue;
    }
    wake_.prepare_sleep();
    // Re-check after arming: work (or an acknowledgement) published before
    // prepare_sleep() did not signal.
    if (work_due() || stop_.load(std::memory_order_acquire)) {
      wake_.cancel_sleep();
      continue;
    }
    wake_.wait(timeout);
  }
}

// Timers and outcomes of every sink; hands back the batches that outcomes
// completed. Returns ms until the next is due, or -1.
int Writer::poll_sinks(uint64_t now_ms) {
  int timeout = -1;
  for (Sink* s : sinks_) timeout = sooner(timeout, s->poll(now_ms));
  if (!awaiting_.empty() && awaiting_.front()->awaiting == 0) complete_awaiting();
  return timeout;
}

// A batch queued, or a sink's outcome to collect: what ends a spin or a sleep.
bool Writer::work_due() const {
  if (!queue_.empty()) return true;
  for (const Sink* s : sinks_) {
    if (s->has_news()) return true;
  }
  return false;
}

// Numbers and frames the batch's pending messages; flushes whenever the
// buffer reaches a bound, so one huge batch is stored in bounded pieces.
void Writer::take(Batch* b) {
  stats.batches.add();
  if (buffered_msgs_ == 0 && ready_.empty()) first_ms_ = monotonic_ms();
  uint32_t n = static_cast<uint32_t>(b->msgs.size());
  span_begin_ = 0;
  for (uint32_t i = 0; i < n; i++) {
    const MsgRef& m = b->msgs[i];
    if (m.status != kPending) continue;  // rejected at parse (TOO_LARGE)
    size_t size = record::record_size(m.name_len, m.payload_len);
    for (Sink* s : splitters_) {
      if (s->split_before(buffered_, size)) {  // a record is never split across segments
        spans_.push_back(Span{b, span_begin_, i});
        span_begin_ = i;
        flush();
        s->boundary(seq_ + 1);
      }
    }
    frame(m, b);
    if (buffered_msgs_ >= cfg_.max_messages || buffered_ >= cfg_.max_bytes) {
      spans_.push_back(Span{b, span_begin_, i + 1});
      span_begin_ = i + 1;
      flush();
    }
  }
  spans_.push_back(Span{b, span_begin_, n});
  ready_.push_back(b);
}

void Writer::frame(const MsgRef& m, const Batch* b) {
  size_t size = record::record_size(m.name_len, m.payload_len);
  ++seq_;
  if (framing_) {
    ensure_capacity(buffered_ + size);
    record::encode(buf_ + buffered_, seq_, b->time_us, m.client_id, m.msg_id, b->data + m.offset, m.name_len,
                   b->data + m.payload_offset(), m.payload_len);
  }
  buffered_ += size;
  buffered_msgs_++;
}

// Hands the buffer to every sink, settles its messages and hands back the
// batches that are now complete.
void Writer::flush() {
  if (buffered_msgs_ > 0) {
    Flush f{&spans_, seq_ - buffered_msgs_ + 1, buffered_msgs_, buf_, framing_ ? buffered_ : 0, wire::kAckOk};
    for (Sink* s : sinks_) s->store(f);
    if (f.status != wire::kAckOk) {
      seq_ -= buffered_msgs_;  // nothing was stored: the numbers are given back
      stats.failed_records.add(buffered_msgs_);
    }
    stats.last_seq.v.store(seq_, std::memory_order_relaxed);
    settle(f.status);
  }
  spans_.clear();
  buffered_ = 0;
  buffered_msgs_ = 0;
  complete_ready();
}

// Every message of the flush the sinks left pending gets the flush's status;
// those a sink decides later (kDecidedLater) are left to it.
void Writer::settle(uint8_t status) {
  for (const Span& s : spans_) {
    for (uint32_t i = s.begin; i < s.end; i++) {
      MsgRef& m = s.batch->msgs[i];
      if (m.status == kPending) m.status = status;
    }
  }
}

// Hands finished batches back to their service threads, in the order they
// were taken: a batch still waiting for JetStream holds back the ones after
// it, so the ACKs of one connection never overtake each other. Only called
// right after a flush: every batch in ready_ then has all its messages
// settled or waiting for an outcome.
void Writer::complete_ready() {
  for (Batch* b : ready_) {
    if (!awaiting_.empty() || b->awaiting > 0) {
      awaiting_.push_back(b);
    } else {
      route_.hand_back(b);
    }
  }
  ready_.clear();
  complete_awaiting();
}

// Hands back the batches at the front of awaiting_ whose outcomes are all
// in, then wakes the service threads that got completions.
void Writer::complete_awaiting() {
  while (!awaiting_.empty() && awaiting_.front()->awaiting == 0) {
    route_.hand_back(awaiting_.front());
    awaiting_.pop_front();
  }
  route_.wake_owners();
}

void Writer::ensure_capacity(size_t need) {
  if (buf_cap_ >= need) return;
  size_t ncap = buf_cap_ ? buf_cap_ : 1 << 20;
  while (ncap < need) ncap *= 2;
  void* p = std::realloc(buf_, ncap);
  if (!p) throw std::bad_alloc();
  buf_ = static_cast<uint8_t*>(p);
  buf_cap_ = ncap;
}

}  // namespace msgs
