// The engine's configuration, already validated by lib/config.ts.
#pragma once
#include <cstdint>
#include <string>

namespace msgs {

enum class AckMode : uint8_t { kReceived, kWritten, kDurable };
enum class FsyncPolicy : uint8_t { kNever, kInterval, kBatch };
enum class Protocol : uint8_t { kV1, kLegacy };
enum class FileFormat : uint8_t { kBinary, kText };

struct EngineConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 9000;
  uint32_t service_threads = 2;
  Protocol protocol = Protocol::kV1;
  AckMode ack_mode = AckMode::kWritten;

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
};

}  // namespace msgs
