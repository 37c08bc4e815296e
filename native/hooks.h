// Message hooks: copies of stored messages handed to JS (server.onMessages)
// off the data path. The hook feed is one of the writer's sinks: it copies
// each flush's stored messages into one HookBatch (one copy per flush, none
// per message) and passes it to the host through the channel.
// A byte budget bounds what waits for JS: with policy "drop" a batch that does
// not fit is dropped and counted; with "block" the writer waits for room,
// which slows ingest through the shared queue's back-pressure instead.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "events.h"
#include "sink.h"
#include "stats.h"

namespace msgs {

struct HookMessage {
  uint64_t seq;
  uint64_t time_us;
  uint64_t msg_id;
  uint32_t client_id;
  uint32_t offset;       // name at data[offset], payload right after it
  uint32_t payload_len;
  uint8_t name_len;
};

struct HookBatch {
  std::vector<uint8_t> data;
  std::vector<HookMessage> msgs;
  uint64_t budget = 0;   // bytes charged to the channel until released
};

class HookChannel {
 public:
  using Sink = std::function<bool(HookBatch*)>;  // takes ownership when it returns true

  // Node thread: turns delivery on or off and sets the policy and budget.
  void configure(bool enabled, bool block, uint64_t max_bytes);
  // relaxed: checked once per batch; a change may take effect a batch late.
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  void set_sink(Sink sink) { sink_ = std::move(sink); }

  // Writer thread, before copying a batch: charges `budget` bytes for `n`
  // messages. Policy drop: false (and the messages count as dropped) when it
  // does not fit. Policy block: waits until it fits.
  bool reserve(uint64_t budget, uint64_t n);
  // Writer thread: hands a reserved batch (b->budget set) to the host.
  void deliver(HookBatch* b);
  // Host (JS thread): the hooks are done with a batch.
  void release(uint64_t bytes);
  // Node thread, at stop: wakes a writer blocked on the budget.
  void shutdown();

  Counter delivered;   // messages handed to the hooks
  Counter dropped;     // messages the hooks did not see (policy drop)
  Counter blocked;     // times the writer waited for the hooks (policy block)

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> enabled_{false};
  bool block_ = false;
  bool shutdown_ = false;
  uint64_t max_bytes_ = 64ull << 20;
  uint64_t used_ = 0;
  Sink sink_;
};

class HookFeed final : public Sink {
 public:
  // Shared: hook batches still queued for JS may outlive the engine.
  static constexpr uint64_t kDropReportMs = 1000;
  // `events`: dropped messages (policy drop) are reported, coalesced: at
  // most one warn line and one HookDropEvent per kDropReportMs, carrying
  // the count since the last report.
  HookFeed(std::shared_ptr<HookChannel> channel, Events& events)
      : channel_(std::move(channel)), events_(events) {}
  void open() override {}
  // Reports drops still unreported once the interval has passed.
  int poll(uint64_t now_ms) override;
  void drain() override { report_drops(true); }
  // Copies the flush's messages for the hooks, when any are registered and
  // the file stored them (runs before the JetStream sink: a message may yet
  // be answered REPLICATION_FAILED).
  void store(Flush& f) override;

 private:
  bool report_drops(bool force);

  std::shared_ptr<HookChannel> channel_;
  Events& events_;
  uint64_t unreported_ = 0;     // messages dropped since the last report
  uint64_t last_report_ms_ = 0;
};

}  // namespace msgs
