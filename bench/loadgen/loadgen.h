// msgbench's load engine: a closed-loop TCP load generator for the v1 and the
// legacy protocol. Plain C++17 and Linux epoll; it does not use libevent and
// shares nothing with the server engine but the wire codec (native/codec.h,
// the msgs_format library), so it can drive any server. It is built as its
// own Node-API module, msgbench.node (loadgen_binding.cc), never into
// msgserver.node.
//
// Shape: `threads` worker threads, each owning an epoll instance and the
// connections i with i % threads == its index. Every connection keeps up to
// `window` messages in flight. Its frames live in a per-connection ring of
// pre-built slots (window slots of one frame each): sending a message patches
// its id (and, for a payload range, its size and bytes) into its slot, and
// all messages that fit go out with one writev. No allocation per message.
// Each message's send time (steady_clock, taken once per writev) is kept in
// its slot; its ACK's arrival time minus that goes into the thread's
// histogram (log buckets, < 1% relative error), merged across threads at the
// end. Every ACK is checked: v1 count against the messages in flight and
// last_msg_id against the id of the last message it covers; legacy: the
// exact bytes "ack" per message. A mismatch is an error and ends that
// connection.
//
// Files, one concern each:
//   loadgen.cc   a run: check the config, start the workers, report progress, add up the result
//   worker.*     one thread's loop and its connections' life (connect, HELLO, ramp, stall, done)
//   conn.h       one connection's state and counters
//   send.*       the send side: fill the window, one writev per connection per round
//   frames.*     the frames in the send slots and the per-message patch
//   recv.*       the receive side: parse HELLO_OK/ACK/ERR (or "ack"), match ACKs, record latency
//   latency.*    the latency histogram
//   stats.*      per-worker counts, live progress, error samples, the result's rates
//   net.*        address resolution and non-blocking connect
//   tls.*        TLS on a connection (chosen per connection: plaintext ones never branch into it)
//   poller.h     the epoll instance
//   clock.h      the clock and its units
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace loadgen {

enum class Protocol { kV1, kLegacy };

struct LoadConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 9000;
  Protocol protocol = Protocol::kV1;
  uint32_t connections = 1;
  /** Messages per connection; 0 = run for duration_ms instead. */
  uint64_t messages = 0;
  uint32_t duration_ms = 0;
  /** Payload bytes per message, uniformly in [payload_min, payload_max]. Legacy: text length, at most 1023. */
  uint32_t payload_min = 100;
  uint32_t payload_max = 100;
  /** Messages in flight per connection (1 = synchronous). */
  uint32_t window = 1;
  uint32_t threads = 1;
  /** Connection i starts at ramp_ms * i / connections. 0 = all at once. */
  uint32_t ramp_ms = 0;
  /** v1 message name (0..255 bytes); legacy: up to 127 bytes. */
  std::string name = "bench";
  uint32_t client_id_base = 1;
  /** A connection that sees no ACK progress for this long while it waits for one fails. */
  uint32_t stall_timeout_ms = 15000;
  uint64_t seed = 1;
  /** How often the progress callback runs. */
  uint32_t progress_interval_ms = 500;
  /** v1 over TLS (tls.h): PEM files of the CA to trust (empty: the system's), of the client certificate and its key. */
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key;
  /** The name the server's certificate must carry; empty: host. */
  std::string tls_servername;
  /** v1: authenticate every connection with this token (HELLO flag + AUTH frame); empty: none. */
  std::string token;
};

struct Progress {
  double elapsed_ms = 0;
  uint64_t sent = 0;
  uint64_t acked = 0;
  uint64_t errors = 0;
  uint32_t connections_open = 0;
};

struct LatencySummary {
  uint64_t count = 0;
  double min_us = 0, mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

struct LoadResult {
  double elapsed_ms = 0;        // first connect to the last connection finished
  uint64_t messages_sent = 0;   // fully written to the socket
  uint64_t messages_acked = 0;  // ACKed with status OK and checked
  uint64_t wire_bytes_sent = 0; // frame bytes (v1: incl. HELLO and AUTH; legacy: 1160 per message; TLS: before encryption)
  uint64_t payload_bytes_acked = 0;
  uint64_t ack_frames = 0;      // v1 ACK frames received (legacy: ACKs)
  double msgs_per_sec = 0;      // messages_acked / elapsed
  double wire_mb_per_sec = 0;   // wire_bytes_sent / elapsed, MB = 1e6 bytes
  double payload_mb_per_sec = 0;
  LatencySummary latency;       // per message, send (writev) -> its ACK read
  uint32_t connections_ok = 0;  // finished every message it owed
  uint32_t connections_failed = 0;
  // Errors, by kind. `errors` is their sum.
  uint64_t errors = 0;
  uint64_t connect_errors = 0;
  uint64_t ack_mismatches = 0;  // count past the in-flight messages, wrong last id, bad bytes
  uint64_t bad_status = 0;      // messages ACKed with a non-zero status
  uint64_t server_errors = 0;   // ERR frames / bad HELLO_OK
  uint64_t closed_early = 0;    // connections the server closed (or reset) while messages were owed
  uint64_t timeouts = 0;        // connections that stalled past stall_timeout_ms
  uint64_t messages_unacked = 0;// messages written but never ACKed
  std::vector<std::string> error_samples;  // the first few error messages
};

using ProgressFn = std::function<void(const Progress&)>;

class LoadGen {
 public:
  /** Runs the load to completion on its own threads; blocks the caller. Throws std::runtime_error for a bad config. */
  static LoadResult run(const LoadConfig& cfg, const ProgressFn& progress = nullptr);
};

}  // namespace loadgen
