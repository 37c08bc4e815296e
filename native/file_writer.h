// File-writer thread: drains the shared queue, encodes records into one
// buffer, stores each buffer with one pwrite (then fdatasync when the policy
// says), and hands the batches back to their service threads, which send the
// ACKs that waited for the write.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "notifier.h"
#include "stats.h"

namespace msgs {

class Engine;
class JetStreamSink;
struct Batch;

class FileWriter {
 public:
  explicit FileWriter(Engine& engine);
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  // Node thread, before start(): opens the file and recovers its tail.
  // Throws runtime_error("cannot open messages.log: Permission denied").
  void open();
  void start();
  // Producers, after a push.
  void notify() { notifier_.notify(); }
  // Node thread, once every service thread has exited: drain, flush, fsync, exit.
  void request_stop();
  void join();

  WriterStats stats;
  // The JetStream sink, or null when jetstream is not configured.
  JetStreamSink* jetstream() { return js_.get(); }

 private:
  struct Span {
    Batch* batch;
    uint32_t begin, end;  // messages [begin, end) of the batch are in buf_
  };

  void run();
  void take(Batch* b);
  void feed_hooks(const Batch* b);
  void flush();
  bool store(int* err);
  void record_latency(std::chrono::steady_clock::duration d);
  bool sync(int* err);
  void rollback(uint64_t good_offset, uint64_t seq_before, int err);
  void settle_spans(bool stored);
  void complete_ready();
  void complete_awaiting();
  void hand_back(Batch* b);
  int reap_jetstream(uint64_t now_ms);
  bool jetstream_settled() const;
  void open_file(const std::string& path);
  void open_segments();
  void recover(uint64_t size);
  void recover_text(uint64_t size);
  int write_header();
  bool rotation_due(size_t next_record) const;
  void rotate();
  void ensure_capacity(size_t need);

  Engine& engine_;
  Notifier notifier_;
  std::thread thread_;
  // release/acquire: everything before request_stop() is seen by the writer.
  std::atomic<bool> stop_{false};
  std::string path_;
  int fd_ = -1;
  bool text_ = false;      // file.format 'text': the original's lines
  bool rotating_ = false;  // file.path is a directory of segments
  std::string dir_;
  uint64_t segment_opened_ms_ = 0;
  uint64_t segment_records_ = 0;
  uint64_t offset_ = 0;   // end of the last good record
  uint64_t seq_ = 0;      // last sequence number given out
  uint8_t* buf_ = nullptr;
  size_t buf_len_ = 0, buf_cap_ = 0;
  uint32_t buf_msgs_ = 0;
  std::vector<Span> spans_;
  std::vector<Batch*> ready_;     // fully encoded; handed back after the next flush
  std::deque<Batch*> awaiting_;   // flushed, waiting for JetStream acks; handed back in order
  bool file_ = true;              // file.enabled: false when JetStream is the only sink
  std::unique_ptr<JetStreamSink> js_;
  std::vector<uint8_t> wake_;     // per service thread: has completions to pick up
  std::vector<uint32_t> hook_index_;  // messages encoded by take(), for the hooks
  std::vector<uint64_t> hook_seq_;
  uint64_t first_ms_ = 0;         // when the oldest unflushed message was taken
  uint64_t last_sync_ms_ = 0;
  uint64_t unsynced_records_ = 0;
  uint64_t last_error_log_ms_ = 0;
  uint64_t test_delay_us_ = 0;    // MSGSERVER_TEST_WRITE_DELAY_US (tests only)
};

}  // namespace msgs
