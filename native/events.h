// What the engine reports to its host (the Node binding): typed events with
// named fields, one struct per kind, and the rate-limited logging every
// component shares. Emitted from engine threads; the host must not block.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <variant>

namespace msgs {

enum class LogLevel : uint8_t { kInfo, kWarn, kError };

struct LogEvent {
  LogLevel level;
  std::string message;
};

// The log file's tail was repaired at start (torn tail cut, or a damaged
// file set aside with file.repair).
struct RecoveredEvent {
  std::string message;
  uint64_t offset;     // first byte cut or set aside
  uint64_t bytes_cut;  // bytes truncated; 0 when a damaged file was set aside
  uint64_t last_seq;   // last good sequence number
};

// An I/O operation on the log failed (see io_errors.h).
struct IoErrorEvent {
  std::string op;       // "write", "fsync", ... (io_op_name)
  std::string path;
  std::string message;  // "cannot fsync messages.log: Input/output error"
  int err;              // errno
  uint64_t records;     // records whose ACK this failure decided (WRITE_FAILED); 0 if none
};

struct RotateEvent {
  std::string closed;  // the segment just closed (complete and synced)
  std::string next;    // the new active segment
};

// A segment was closed (after a rotation, or found closed at start): for
// the archive hooks (server.onSegmentClosed).
struct SegmentClosedEvent {
  std::string path;
  uint64_t first_seq;
  uint64_t last_seq;
  uint64_t bytes;
};

// Retention deleted a closed segment.
struct SegmentDeletedEvent {
  std::string path;
  uint64_t first_seq;
  uint64_t bytes;
  std::string reason;  // "maxBytes", "maxAgeMs" or "maxSegments"
};

// Message hooks with policy 'drop' missed messages: coalesced, at most one
// per interval, with the count since the last one.
struct HookDropEvent {
  uint64_t messages;
};

struct ConnectionEvent {
  uint64_t id;
  std::string remote_address;  // "127.0.0.1:53412" or "[::1]:53412"
  uint32_t service_thread;
};

struct DisconnectEvent {
  uint64_t id;
  std::string reason;
  uint64_t messages_received;
  uint64_t unacked;  // messages whose ACK the connection did not get
};

// The JetStream stream answered a publish for the first time: the sink is
// ready (MessageServer's 'ready' event, listen({ waitForSink })).
struct JetStreamReadyEvent {
  std::string stream;
};

using Event = std::variant<LogEvent, RecoveredEvent, IoErrorEvent, RotateEvent, SegmentClosedEvent,
                           SegmentDeletedEvent, HookDropEvent, ConnectionEvent, DisconnectEvent, JetStreamReadyEvent>;

// The host's side. Components get a reference to this, never to the engine.
class Events {
 public:
  // Returns false when the host could not take the event (it is dropped).
  using Sink = std::function<bool(Event&&)>;
  explicit Events(Sink sink) : sink_(std::move(sink)) {}

  // Any thread.
  void emit(Event&& ev) {
    // relaxed: a count for stats, written by many threads.
    if (sink_ && !sink_(std::move(ev))) dropped_.fetch_add(1, std::memory_order_relaxed);
  }
  // Events the host could not take (its queue was full): for stats.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  void log(LogLevel level, std::string message) { emit(LogEvent{level, std::move(message)}); }

  // Connection events cost a string per connection: only while JS listens.
  void set_connection_events(bool on) { conn_events_.store(on, std::memory_order_relaxed); }
  // relaxed: a listener added a moment ago may miss a connection or two.
  bool connection_events() const { return conn_events_.load(std::memory_order_relaxed); }
  // relaxed: ids only need to be unique.
  uint64_t next_connection_id() { return next_conn_id_.fetch_add(1, std::memory_order_relaxed); }

 private:
  Sink sink_;
  std::atomic<uint64_t> dropped_{0};
  std::atomic<bool> conn_events_{false};
  std::atomic<uint64_t> next_conn_id_{1};
};

// "At most one line per interval" for errors that can repeat every batch (a
// full disk) or every accept (out of descriptors). Owned by one thread.
class RateLimit {
 public:
  explicit RateLimit(uint64_t interval_ms) : interval_ms_(interval_ms) {}
  // True when a line may be logged now.
  bool allow(uint64_t now_ms) {
    if (last_ms_ != 0 && now_ms - last_ms_ < interval_ms_) return false;
    last_ms_ = now_ms;
    return true;
  }

 private:
  uint64_t interval_ms_;
  uint64_t last_ms_ = 0;
};

}  // namespace msgs
