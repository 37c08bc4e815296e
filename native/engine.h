// The engine: wires the listener, the service threads, the shared queue and
// the file writer together (docs/architecture.md), and owns their lifetime.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "hooks.h"
#include "mpsc_queue.h"
#include "notifier.h"
#include "stats.h"

namespace msgs {

class Listener;
class ServiceLoop;
class FileWriter;
struct Batch;

// Something the engine reports to its host (the Node binding): log lines,
// recovery, write errors. Called from engine threads; must not block.
struct EngineEvent {
  std::string type;     // "log", "recovered", "error", "rotate"
  std::string level;    // for "log": "info", "warn", "error"
  std::string message;
  std::string detail;   // "rotate": the new segment's path
  uint64_t a = 0, b = 0, c = 0;  // type-specific numbers (see addon.cc)
};
using EventSink = std::function<void(EngineEvent&&)>;

struct StopReport {
  uint64_t unacked_closed = 0;   // connections closed with ACKs still owed
  uint64_t unacked_messages = 0; // the messages those ACKs were for (all were written)
  bool timed_out = false;
};

class Engine {
 public:
  Engine(EngineConfig cfg, EventSink sink);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Binds the port, opens and recovers the file, starts every thread.
  // Throws std::runtime_error with a message fit for the user.
  void start();
  // Stops accepting, lets the service threads finish what they parsed, has
  // the writer flush and fsync, sends the ACKs, closes every connection and
  // joins all threads. Idempotent. Blocks: call it off the JS thread.
  StopReport stop(uint32_t timeout_ms);

  bool running() const { return running_; }
  const EngineConfig& config() const { return cfg_; }
  uint16_t port() const;

  // --- for the components ---
  MpscQueue& queue() { return queue_; }
  // Bytes charged to the shared queue (see Batch::accounted).
  std::atomic<uint64_t>& queue_bytes() { return queue_bytes_; }
  std::atomic<uint64_t>& queue_batches() { return queue_batches_; }
  bool queue_full() const {
    // relaxed: a stale value only delays a pause or a resume by one pass.
    return queue_bytes_.load(std::memory_order_relaxed) >= cfg_.max_queue_bytes;
  }
  // Open connections across all service threads (maxConnections).
  std::atomic<uint32_t>& open_connections() { return open_connections_; }
  ServiceLoop& service(uint32_t i) { return *services_[i]; }
  uint32_t service_count() const { return static_cast<uint32_t>(services_.size()); }
  Listener& listener() { return *listener_; }
  FileWriter& writer() { return *writer_; }
  // Called by the writer after it consumed batches: resumes paused readers.
  void wake_paused_services();
  void emit(EngineEvent&& ev);
  HookChannel& hooks() { return *hooks_; }
  // Shared: hook batches still queued for JS may outlive the engine.
  std::shared_ptr<HookChannel> hooks_ptr() { return hooks_; }
  // Connection events cost a string per connection: only when JS listens.
  void set_connection_events(bool on) { conn_events_.store(on, std::memory_order_relaxed); }
  // relaxed: a listener added a moment ago may miss a connection or two.
  bool connection_events() const { return conn_events_.load(std::memory_order_relaxed); }
  // relaxed: ids only need to be unique.
  uint64_t next_connection_id() { return next_conn_id_.fetch_add(1, std::memory_order_relaxed); }
  void log(const char* level, const std::string& message);

 private:
  EngineConfig cfg_;
  EventSink sink_;
  bool running_ = false;
  MpscQueue queue_;
  alignas(64) std::atomic<uint64_t> queue_bytes_{0};
  std::atomic<uint64_t> queue_batches_{0};
  alignas(64) std::atomic<uint32_t> open_connections_{0};
  std::unique_ptr<Listener> listener_;
  std::vector<std::unique_ptr<ServiceLoop>> services_;
  std::unique_ptr<FileWriter> writer_;
  std::shared_ptr<HookChannel> hooks_ = std::make_shared<HookChannel>();
  std::atomic<bool> conn_events_{false};
  std::atomic<uint64_t> next_conn_id_{1};
};

}  // namespace msgs
