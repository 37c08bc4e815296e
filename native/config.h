// The engine's configuration, already validated by lib/config.ts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace msgs {

// kReplicated: the ACK waits for JetStream's publish acknowledgement.
enum class AckMode : uint8_t { kReceived, kWritten, kDurable, kReplicated };
enum class FsyncPolicy : uint8_t { kNever, kInterval, kBatch };
enum class Protocol : uint8_t { kV1, kLegacy };
enum class FileFormat : uint8_t { kBinary, kText };

// The JetStream sink (docs/scale-out.md): each record is also published to
// <subject_prefix>.<client_id> on a NATS JetStream stream.
struct JetStreamConfig {
  bool enabled = false;
  std::vector<std::string> servers;   // nats://host:port
  std::string stream;
  std::string subject_prefix;
  uint32_t replicas = 1;              // for a stream this server creates
  bool create_stream = true;
  uint32_t ack_timeout_ms = 5000;     // a publish not acknowledged by then failed
  uint32_t max_pending = 65536;       // publishes awaiting their acknowledgement
};

struct EngineConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 9000;
  uint32_t service_threads = 2;
  Protocol protocol = Protocol::kV1;
  AckMode ack_mode = AckMode::kWritten;

  bool file_enabled = true;            // false: JetStream is the only sink
  std::string file_path = "messages.log";
  FileFormat format = FileFormat::kBinary;
  uint64_t rotate_bytes = 0;           // 0: off. On: file_path is a directory of segments
  uint64_t rotate_ms = 0;              // 0: off
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  uint32_t fsync_interval_ms = 1000;
  bool repair = false;

  uint32_t batch_max_messages = 4096;
  uint64_t batch_max_bytes = 1 << 20;
  uint32_t batch_max_delay_ms = 0;

  uint32_t max_message_bytes = 1 << 20;
  uint32_t max_connections = 10000;
  uint32_t idle_timeout_ms = 0;        // 0: off
  uint32_t handshake_timeout_ms = 10000;
  uint32_t frame_timeout_ms = 30000;
  uint64_t max_queue_bytes = 64ull << 20;
  uint64_t max_inflight_bytes_per_connection = 8ull << 20;  // parsed, not yet ACKed

  JetStreamConfig jetstream;
};

}  // namespace msgs
