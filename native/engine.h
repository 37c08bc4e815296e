// The engine: wires the components together once (docs/architecture.md) and
// owns their lifetime. Each component gets references to exactly what it
// uses; none of them knows the engine. The binding (addon.cc) sees the
// engine's start/stop and read-only views of the counters.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "auth.h"
#include "completion_route.h"
#include "config.h"
#include "events.h"
#include "file_sink.h"
#include "hooks.h"
#include "io_errors.h"
#include "jetstream_sink.h"
#include "listener.h"
#include "log_file.h"
#include "notifier.h"
#include "service_loop.h"
#include "shared_queue.h"
#include "writer.h"

namespace msgs {

struct StopReport {
  uint64_t unacked_closed = 0;   // connections closed with ACKs still owed
  uint64_t unacked_messages = 0; // the messages those ACKs were for (all were written)
  bool timed_out = false;
};

class Engine {
 public:
  Engine(Config cfg, Events::Sink events);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Binds the port, opens and recovers the log, connects the sinks, starts
  // every thread. Throws std::runtime_error with a message fit for the user
  // (a SystemError with code ERR_MSGS_TLS_FILES when the TLS files cannot be used).
  // `principals`: the auth section's token holders and certificate names.
  void start(std::vector<Principal> principals = {});
  // Stops accepting, lets the service threads finish what they parsed, has
  // the writer flush and fsync, sends the ACKs, closes every connection and
  // joins all threads. Idempotent. Blocks: call it off the JS thread.
  StopReport stop(uint32_t timeout_ms);

  bool running() const { return running_; }
  uint16_t port() const { return listener_ ? listener_->port() : 0; }
  Events& events() { return events_; }
  uint64_t events_dropped() const { return events_.dropped(); }
  // Shared: hook batches still queued for JS may outlive the engine.
  const std::shared_ptr<HookChannel>& hooks() { return hooks_; }

  // --- Node thread, while running ---
  // server.reconfigure(): the fields of LiveSettings take `cfg`'s values (the
  // rest of `cfg` is ignored: lib reports those as needing a restart). The
  // writer is woken to apply retention and the disk guard at once.
  void reconfigure(const Config& cfg);
  // server.reload(): builds new credentials from the tls files (read again
  // now) and `principals` (lib read the tokens file again); new
  // connections use them, open ones keep theirs. On failure the old ones
  // stay and the reason is returned ('' on success); counted either way.
  std::string reload(std::vector<Principal> principals);
  // A reload lib could not even start (the tokens file): counted only.
  void reload_failed() { reload_failures_.add(); }
  uint64_t reloads() const { return reloads_.get(); }
  uint64_t reload_failures() const { return reload_failures_.get(); }
  // Bytes held in unfinished frames across the service threads (gauge).
  uint64_t partial_bytes() const { return partial_bytes_.load(std::memory_order_relaxed); }
  // Every archive hook resolved for this closed segment (afterArchive).
  void segment_archived(const std::string& path);
  // An archive hook rejected for a segment (counted: stats().archiveFailures).
  void archive_failed() { archive_failures_.add(); }

  // --- read-only views for stats (valid after start(), until destruction) ---
  const std::vector<std::unique_ptr<ServiceLoop>>& services() const { return services_; }
  const ListenerStats& listener_stats() const { return listener_->stats; }
  const SharedQueue& queue() const { return queue_; }
  const WriterStats& writer_stats() const { return writer_->stats; }
  // Zeros when the file is off.
  const LogFileStats& log_stats() const { return log_ ? log_->stats : no_log_stats_; }
  const LatencyHistogram& store_latency() const { return file_sink_ ? file_sink_->store_latency : no_latency_; }
  const FileSinkStats& file_sink_stats() const { return file_sink_ ? file_sink_->stats : no_file_sink_stats_; }
  uint64_t archive_failures() const { return archive_failures_.get(); }
  const IoErrorStats& io_error_stats() const { return io_errors_.stats; }
  // Null without a jetstream section.
  const JetStreamSink* jetstream() const { return jetstream_.get(); }
  const HookChannel& hook_channel() const { return *hooks_; }

 private:
  void build();
  void teardown();

  const Config cfg_;
  LiveSettings live_{cfg_};  // what reconfigure() changes; components read these, not cfg_
  Events events_;
  IoErrors io_errors_{events_};
  bool started_ = false;  // an engine starts once: the queue and the route keep its wiring
  bool running_ = false;
  std::atomic<uint32_t> open_connections_{0};
  std::atomic<uint64_t> partial_bytes_{0};  // limits.maxPartialFrameBytes; relaxed (service_loop.cc)
  Credentials credentials_;
  Counter reloads_;          // Node thread only
  Counter reload_failures_;  // Node thread only
  Notifier writer_wake_;
  SharedQueue queue_{cfg_.limits.max_queue_bytes, writer_wake_};
  CompletionRoute route_;
  std::shared_ptr<HookChannel> hooks_ = std::make_shared<HookChannel>();
  std::vector<std::unique_ptr<ServiceLoop>> services_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<BackgroundSync> background_sync_;  // fsync 'interval' only
  std::unique_ptr<LogFile> log_;
  std::unique_ptr<FileSink> file_sink_;
  std::unique_ptr<JetStreamSink> jetstream_;
  std::unique_ptr<HookFeed> hook_feed_;
  std::unique_ptr<Writer> writer_;
  const LogFileStats no_log_stats_{};
  const LatencyHistogram no_latency_{};
  const FileSinkStats no_file_sink_stats_{};
  Counter archive_failures_;  // Node thread only
};

}  // namespace msgs
