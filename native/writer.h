// The writer thread: drains the shared queue, numbers the messages, frames
// them into one buffer of binary records and, at each flush, hands the buffer
// to its sinks in order (the log file, the hooks, JetStream; sink.h). Then it
// settles each message's status and returns every finished batch to its
// service thread, in taking order, so the service threads can send the ACKs
// that waited for it.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "completion_route.h"
#include "config.h"
#include "notifier.h"
#include "shared_queue.h"
#include "sink.h"
#include "spin_wait.h"
#include "stats.h"

namespace msgs {

class Writer {
 public:
  // `wake` is the notifier the queue and the sinks signal; `sinks` in the
  // order they store a flush.
  Writer(const BatchConfig& cfg, SharedQueue& queue, CompletionRoute& route, Notifier& wake, std::vector<Sink*> sinks);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Node thread, before start(): numbering continues after `last_seq`.
  void start(uint64_t last_seq);
  // Node thread, once every service thread has exited: drain, flush, sync, exit.
  void request_stop();
  void join();

  WriterStats stats;

 private:
  void run();
  int poll_sinks(uint64_t now_ms);
  bool work_due() const;
  void take(Batch* b);
  void frame(const MsgRef& m, const Batch* b);
  void flush();
  void settle(uint8_t status);
  void complete_ready();
  void complete_awaiting();
  void ensure_capacity(size_t need);

  const BatchConfig& cfg_;
  SharedQueue& queue_;
  CompletionRoute& route_;
  Notifier& wake_;
  std::vector<Sink*> sinks_;
  std::vector<Sink*> splitters_;  // the sinks whose split_before() is asked per message
  bool framing_ = false;  // some sink reads the binary records (else only their sizes count)
  std::thread thread_;
  SpinPolicy spin_{kWriterSpinNs};  // for the next batch before sleeping
  // release/acquire: everything before request_stop() is seen by the writer.
  std::atomic<bool> stop_{false};

  uint64_t seq_ = 0;          // last sequence number given out
  uint8_t* buf_ = nullptr;    // the binary records of the messages taken since the last flush
  size_t buf_cap_ = 0;
  uint64_t buffered_ = 0;     // their bytes (counted even when not framed)
  uint32_t buffered_msgs_ = 0;
  uint64_t first_ms_ = 0;     // when the oldest unflushed message was taken
  std::vector<Span> spans_;   // the messages in buf_
  uint32_t span_begin_ = 0;   // take(): where the current batch's open span starts
  std::vector<Batch*> ready_;    // fully taken; handed back after the next flush
  std::deque<Batch*> awaiting_;  // flushed, waiting for JetStream outcomes; handed back in order
};

}  // namespace msgs
