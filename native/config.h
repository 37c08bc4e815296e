// The engine's configuration: a mirror of lib's ResolvedConfig, section for
// section and field for field, read once by the binding (addon_config.cc)
// from the object resolveConfig() returned. It has no defaults of its own:
// the defaults and the rules live in lib/server/config.ts only.
//
// Each section is one list of (type, member, JS name): the struct is made
// from it, and so is the binding's reader, so an option is added here once.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace msgs {

// kReplicated: the ACK waits for JetStream's publish acknowledgement.
enum class AckMode : uint8_t { kReceived, kWritten, kDurable, kReplicated };
enum class FsyncPolicy : uint8_t { kNever, kInterval, kBatch };
enum class Protocol : uint8_t { kV1, kLegacy };
enum class FileFormat : uint8_t { kBinary, kText };
enum class ClientAuth : uint8_t { kNone, kRequest, kRequire };
enum class TlsVersion : uint8_t { kTls12, kTls13 };
// jetstream.whileNotReady: until the stream answers a publish, connections
// are taken and their messages wait (kHold), or refused (kRefuse).
enum class WhileNotReady : uint8_t { kHold, kRefuse };

#define MSGS_DECLARE_FIELD(type, member, js) type member;

// file.retention (only with rotation): the oldest closed segments beyond any
// bound are deleted; 0 is off for each bound. after_archive: a segment is
// deleted only once the host said every archive hook finished with it.
#define MSGS_RETENTION_FIELDS(X)             \
  X(uint64_t, max_bytes, "maxBytes")         \
  X(uint64_t, max_age_ms, "maxAgeMs")        \
  X(uint32_t, max_segments, "maxSegments")   \
  X(bool, after_archive, "afterArchive")
struct RetentionConfig {
  MSGS_RETENTION_FIELDS(MSGS_DECLARE_FIELD)
};

// file: enabled false means JetStream is the only sink; rotate_bytes or
// rotate_ms > 0 make path a directory of segments; 0 is off for both.
// min_free_bytes: the disk-space guard (0 = off). drop_cache: written pages
// leave the page cache behind the writer (background_sync.h).
#define MSGS_FILE_FIELDS(X)                       \
  X(bool, enabled, "enabled")                     \
  X(std::string, path, "path")                    \
  X(FileFormat, format, "format")                 \
  X(uint64_t, rotate_bytes, "rotateBytes")        \
  X(uint64_t, rotate_ms, "rotateMs")              \
  X(FsyncPolicy, fsync, "fsync")                  \
  X(uint32_t, fsync_interval_ms, "fsyncIntervalMs") \
  X(bool, repair, "repair")                       \
  X(RetentionConfig, retention, "retention")      \
  X(uint64_t, min_free_bytes, "minFreeBytes")     \
  X(bool, drop_cache, "dropCache")
struct FileConfig {
  MSGS_FILE_FIELDS(MSGS_DECLARE_FIELD)
};

#define MSGS_BATCH_FIELDS(X)                  \
  X(uint32_t, max_messages, "maxMessages")    \
  X(uint64_t, max_bytes, "maxBytes")          \
  X(uint32_t, max_delay_ms, "maxDelayMs")
struct BatchConfig {
  MSGS_BATCH_FIELDS(MSGS_DECLARE_FIELD)
};

// limits: a timeout of 0 is off; max_inflight_bytes_per_connection bounds
// what one connection has parsed and not yet had ACKed.
#define MSGS_LIMITS_FIELDS(X)                                                      \
  X(uint32_t, max_message_bytes, "maxMessageBytes")                                \
  X(uint32_t, max_connections, "maxConnections")                                   \
  X(uint32_t, idle_timeout_ms, "idleTimeoutMs")                                    \
  X(uint32_t, handshake_timeout_ms, "handshakeTimeoutMs")                          \
  X(uint32_t, frame_timeout_ms, "frameTimeoutMs")                                  \
  X(uint64_t, max_queue_bytes, "maxQueueBytes")                                    \
  X(uint64_t, max_inflight_bytes_per_connection, "maxInflightBytesPerConnection") \
  X(uint64_t, max_partial_frame_bytes, "maxPartialFrameBytes")
struct LimitsConfig {
  MSGS_LIMITS_FIELDS(MSGS_DECLARE_FIELD)
};

// jetstream.tls: TLS toward NATS (also on with tls:// servers). Paths of PEM
// files; "" is none (ca "": the system's trusted CAs).
#define MSGS_NATS_TLS_FIELDS(X) \
  X(std::string, ca, "ca")      \
  X(std::string, cert, "cert")  \
  X(std::string, key, "key")
struct NatsTlsConfig {
  MSGS_NATS_TLS_FIELDS(MSGS_DECLARE_FIELD)
};

// jetstream.nkey: an NKey user (its public key, and the file with its seed).
#define MSGS_NATS_NKEY_FIELDS(X)          \
  X(std::string, public_key, "publicKey") \
  X(std::string, seed_file, "seedFile")
struct NatsNkeyConfig {
  MSGS_NATS_NKEY_FIELDS(MSGS_DECLARE_FIELD)
};

// jetstream (docs/scale-out.md): each record is also published to
// <subject_prefix>.<client_id> on a NATS JetStream stream. The JS section is
// null when off; `enabled` says which.
#define MSGS_JETSTREAM_FIELDS(X)                        \
  X(std::vector<std::string>, servers, "servers")       \
  X(std::string, stream, "stream")                      \
  X(std::string, subject_prefix, "subjectPrefix")       \
  X(uint32_t, replicas, "replicas")                     \
  X(bool, create_stream, "createStream")                \
  X(uint32_t, ack_timeout_ms, "ackTimeoutMs")           \
  X(uint32_t, max_pending, "maxPending")                \
  X(uint32_t, retry_ms, "retryMs")                      \
  X(WhileNotReady, while_not_ready, "whileNotReady")    \
  X(NatsTlsConfig, tls, "tls")                          \
  X(std::string, user, "user")                          \
  X(std::string, password, "password")                  \
  X(std::string, token, "token")                        \
  X(NatsNkeyConfig, nkey, "nkey")                       \
  X(std::string, creds_file, "credsFile")
struct JetStreamConfig {
  bool enabled = false;
  MSGS_JETSTREAM_FIELDS(MSGS_DECLARE_FIELD)
};

// tls (docs/security.md): null when off (`enabled` says which). PEM file
// paths; ca, ciphers and ciphersuites are '' when not given.
#define MSGS_TLS_FIELDS(X)                        \
  X(std::string, cert, "cert")                    \
  X(std::string, key, "key")                      \
  X(std::string, ca, "ca")                        \
  X(ClientAuth, client_auth, "clientAuth")        \
  X(TlsVersion, min_version, "minVersion")        \
  X(std::string, ciphers, "ciphers")              \
  X(std::string, ciphersuites, "ciphersuites")
struct TlsConfig {
  bool enabled = false;
  MSGS_TLS_FIELDS(MSGS_DECLARE_FIELD)
};

// auth: null when off. The tokens and certificate principals themselves are
// loaded by lib and handed over at start and reload (auth.h: Principal);
// certificate_map is true when auth.principals was given.
#define MSGS_AUTH_FIELDS(X)                        \
  X(std::string, tokens_file, "tokensFile")        \
  X(bool, required, "required")                    \
  X(bool, allow_plaintext, "allowPlaintext")
struct AuthConfig {
  bool enabled = false;
  bool certificate_map = false;
  MSGS_AUTH_FIELDS(MSGS_DECLARE_FIELD)
};

#define MSGS_CONFIG_FIELDS(X)                       \
  X(std::string, host, "host")                      \
  X(uint16_t, port, "port")                         \
  X(uint32_t, service_threads, "serviceThreads")    \
  X(Protocol, protocol, "protocol")                 \
  X(AckMode, ack_mode, "ackMode")                   \
  X(FileConfig, file, "file")                       \
  X(BatchConfig, batch, "batch")                    \
  X(LimitsConfig, limits, "limits")                 \
  X(JetStreamConfig, jetstream, "jetstream")       \
  X(TlsConfig, tls, "tls")                          \
  X(AuthConfig, auth, "auth")
struct Config {
  MSGS_CONFIG_FIELDS(MSGS_DECLARE_FIELD)
};

// What server.reconfigure() can change while the engine runs. Owned by the
// engine, read by the components in place of the const Config's fields.
// Every atomic is relaxed: each is a bound read afresh at its next use (the
// next accept, sweep, read, retention step or disk check); a reader that sees
// the old value a moment longer applies the old bound a moment longer, and no
// other data is published through them.
struct LiveSettings {
  std::atomic<uint32_t> max_connections{0};                    // listener
  std::atomic<uint32_t> idle_timeout_ms{0};                    // service threads' sweep
  std::atomic<uint32_t> handshake_timeout_ms{0};               // service threads' sweep
  std::atomic<uint32_t> frame_timeout_ms{0};                   // service threads' sweep
  std::atomic<uint64_t> max_inflight_bytes_per_connection{0};  // service threads' reads
  std::atomic<uint64_t> retention_max_bytes{0};                // writer (log file)
  std::atomic<uint64_t> retention_max_age_ms{0};               // writer (log file)
  std::atomic<uint32_t> retention_max_segments{0};             // writer (log file)
  std::atomic<bool> retention_after_archive{false};            // writer (log file)
  std::atomic<uint64_t> min_free_bytes{0};                     // writer (disk guard)
  std::atomic<uint32_t> fsync_interval_ms{1000};               // writer (file sink)
  // Bumped by each apply(): the writer re-checks the disk and retention at once.
  std::atomic<uint64_t> version{0};

  LiveSettings() = default;
  explicit LiveSettings(const Config& c) { apply(c); }
  LiveSettings(const LiveSettings&) = delete;
  LiveSettings& operator=(const LiveSettings&) = delete;

  void apply(const Config& c) {
    constexpr auto r = std::memory_order_relaxed;
    max_connections.store(c.limits.max_connections, r);
    idle_timeout_ms.store(c.limits.idle_timeout_ms, r);
    handshake_timeout_ms.store(c.limits.handshake_timeout_ms, r);
    frame_timeout_ms.store(c.limits.frame_timeout_ms, r);
    max_inflight_bytes_per_connection.store(c.limits.max_inflight_bytes_per_connection, r);
    retention_max_bytes.store(c.file.retention.max_bytes, r);
    retention_max_age_ms.store(c.file.retention.max_age_ms, r);
    retention_max_segments.store(c.file.retention.max_segments, r);
    retention_after_archive.store(c.file.retention.after_archive, r);
    min_free_bytes.store(c.file.min_free_bytes, r);
    fsync_interval_ms.store(c.file.fsync_interval_ms, r);
    version.fetch_add(1, r);
  }
};

}  // namespace msgs
