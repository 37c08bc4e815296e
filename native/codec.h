// Wire protocol v1 (docs/protocol.md): HELLO / HELLO_OK handshake, then
// length-prefixed frames. All integers big-endian. Pure functions over byte
// buffers: no allocation, no I/O, so the parser can be fuzzed on its own.
#pragma once
#include <cstddef>
#include <cstdint>

namespace msgs {
namespace wire {

constexpr uint8_t kVersion = 1;
constexpr size_t kHelloSize = 12;       // HELLO and HELLO_OK
constexpr size_t kLengthSize = 4;       // u32 length prefix of every frame
constexpr size_t kMsgHeaderSize = 10;   // type, name_len, msg_id (counted in length)
constexpr size_t kAckFrameSize = 20;    // length + 16 bytes
constexpr size_t kMaxErrReason = 255;   // bytes of UTF-8
constexpr size_t kMaxErrFrameSize = kLengthSize + 2 + kMaxErrReason;

constexpr uint8_t kTypeMsg = 0x01;
constexpr uint8_t kTypeAuth = 0x02;     // client -> server, right after HELLO
constexpr uint8_t kTypeAck = 0x81;
constexpr uint8_t kTypeErr = 0x82;

// ERR codes: the connection is closed after the ERR frame.
enum ErrCode : uint8_t {
  kErrBadMagic = 1,         // HELLO did not start with "MSGS"
  kErrBadVersion = 2,       // HELLO version other than 1
  kErrBadHello = 3,         // HELLO flags or reserved not zero
  kErrUnknownType = 4,      // frame type the server does not accept
  kErrFrameTooLarge = 5,    // length over 10 + 255 + max_message_bytes
  kErrMalformed = 6,        // frame shorter than its header says
  kErrBusy = 7,             // maxConnections reached
  kErrShuttingDown = 8,     // server is closing
  kErrIdleTimeout = 9,      // no bytes for idleTimeoutMs
  kErrHandshakeTimeout = 10,// no complete HELLO in time
  kErrSlowFrame = 11,       // a frame started but not finished in time
  kErrInternal = 12,        // server-side failure
  kErrUnauthenticated = 13, // missing, unknown or wrong credentials; AUTH not announced
  kErrForbidden = 14,       // the accepted principal may not use this client_id
};

// ACK statuses: the connection stays open.
enum AckStatus : uint8_t {
  kAckOk = 0,
  kAckTooLarge = 1,         // payload over max_message_bytes
  kAckWriteFailed = 2,      // the write (or fsync in durable mode) failed
  kAckShuttingDown = 3,     // the server closed before the message was stored
  kAckReplicationFailed = 4,// ackMode replicated: JetStream did not acknowledge it in time
};

// How many of each there are (counters are arrays indexed by them): a new
// code or status moves these, and every array with them.
constexpr int kErrCodeCount = kErrForbidden + 1;            // codes are 1..kErrCodeCount-1
constexpr int kAckStatusCount = kAckReplicationFailed + 1;  // statuses are 0..kAckStatusCount-1

// Result of a parse step.
enum class Parse { kNeedMore, kOk, kError };

// HELLO: "MSGS" u8 version u8 flags u16 reserved u32 client_id.
// Checks the magic as soon as the bytes are there (a client that sends
// garbage gets its ERR without having to send 12 bytes).
Parse parse_hello(const uint8_t* p, size_t n, uint32_t* client_id, ErrCode* err);

// HELLO flags bit 0: an AUTH frame follows the HELLO.
constexpr uint8_t kHelloFlagAuth = 0x01;

// HELLO as the server reads it: like parse_hello, but flags bit 0 (an AUTH
// frame follows) is accepted and reported in *flags; other bits are BAD_HELLO.
Parse parse_hello_flags(const uint8_t* p, size_t n, uint32_t* client_id, uint8_t* flags, ErrCode* err);

// AUTH: u32 length | u8 type 0x02 | u8 mechanism | token[length - 2].
constexpr uint8_t kAuthToken = 1;       // mechanism 1: a bearer token
constexpr size_t kMaxToken = 1024;
constexpr size_t kMaxAuthFrameSize = kLengthSize + 2 + kMaxToken;
struct Auth {
  uint32_t size;            // whole frame including the length field
  uint8_t mechanism;        // reported, not judged: the caller checks it
  const uint8_t* token;     // points into the input buffer
  uint16_t token_len;       // 1..kMaxToken
};
// The frame after a HELLO that announced AUTH. kError: a frame of another
// type (*err = kErrUnauthenticated: the announced AUTH did not come), or a
// token length outside 1..kMaxToken (*err = kErrMalformed). *need_total as
// for parse_frame. Never asks for more than kMaxAuthFrameSize bytes.
Parse parse_auth(const uint8_t* p, size_t n, Auth* a, ErrCode* err, size_t* need_total);
size_t encode_auth(uint8_t* out, uint8_t mechanism, const uint8_t* token, size_t token_len);

// One frame from the client (only MSG is accepted).
struct Frame {
  uint32_t size;            // whole frame including the length field
  uint64_t msg_id;
  const uint8_t* name;      // points into the input buffer
  uint8_t name_len;
  const uint8_t* payload;   // points into the input buffer
  uint32_t payload_len;
};

// Largest frame length (the u32 field) the server accepts.
inline uint64_t max_frame_length(uint32_t max_message_bytes) {
  return kMsgHeaderSize + 255ull + max_message_bytes;
}

// Parses the frame at p. kNeedMore: fewer bytes than the frame needs
// (*need_total, when non-null, is set to the frame's full size once the length
// field is readable, else 0). kError: *err says why. kOk: *f is filled; the
// caller checks f->payload_len against its limit (TOO_LARGE is per message).
Parse parse_frame(const uint8_t* p, size_t n, uint32_t max_message_bytes,
                  Frame* f, ErrCode* err, size_t* need_total);

// Encoders return the number of bytes written; `out` must be large enough.
size_t encode_hello(uint8_t* out, uint32_t client_id);
size_t encode_hello_ok(uint8_t* out, uint8_t status, uint32_t max_message_bytes);
size_t encode_ack(uint8_t* out, uint8_t status, uint32_t count, uint64_t last_msg_id);
// `reason` is cut to kMaxErrReason bytes (at a UTF-8 character boundary).
size_t encode_err(uint8_t* out, uint8_t code, const char* reason, size_t reason_len);
// MSG header (length, type, name_len, msg_id, name); the payload follows it.
size_t encode_msg_header(uint8_t* out, uint64_t msg_id, const uint8_t* name,
                         uint8_t name_len, uint32_t payload_len);

// Decoders for what the server sends (clients, tests, the bench).
// HELLO_OK: "MSGS" u8 version u8 status u16 reserved u32 max_message_bytes.
// kError (*err = kErrBadMagic) as soon as a byte of the magic is wrong (the
// server sends an ERR frame instead of HELLO_OK when it refuses a connection,
// e.g. BUSY); kNeedMore below 12 bytes; kOk fills *out. Version and status are
// reported, not judged: the caller decides (kVersion, status 0 = accepted).
struct HelloOk { uint8_t version; uint8_t status; uint32_t max_message_bytes; };
Parse parse_hello_ok(const uint8_t* p, size_t n, HelloOk* out, ErrCode* err);

struct Ack { uint8_t status; uint32_t count; uint64_t last_msg_id; };
// Parses a server frame at p: type ACK or ERR. kOk sets *type and the fields.
Parse parse_server_frame(const uint8_t* p, size_t n, uint8_t* type, Ack* ack,
                         uint8_t* err_code, const uint8_t** reason,
                         size_t* reason_len, size_t* size);

const char* err_code_name(uint8_t code);
const char* ack_status_name(uint8_t status);

}  // namespace wire

// The original server's protocol (docs/legacy.md): fixed 1160-byte packed
// structs with no length prefix, answered with the 3 bytes "ack" each.
//   u32 client_id (network order) | u32 msg_id (network order) |
//   char name[128] (NUL-padded)   | char buffer[1024] (NUL-terminated text)
namespace legacy {

constexpr size_t kFrameSize = 1160;
constexpr size_t kNameSize = 128;
constexpr size_t kBufferSize = 1024;
constexpr size_t kAckSize = 3;
constexpr uint8_t kAck[kAckSize] = {'a', 'c', 'k'};
constexpr size_t kMsgIdOffset = 4;  // after client_id

struct Frame {
  uint32_t client_id;
  uint32_t msg_id;
  const uint8_t* name;    // up to the first NUL of the 128 bytes
  uint8_t name_len;
  const uint8_t* text;    // up to the first NUL; all 1024 bytes if none
  uint32_t text_len;
};

// Any 1160 bytes are a frame, so this never fails: kNeedMore or kOk.
wire::Parse parse_frame(const uint8_t* p, size_t n, Frame* f);
// Writes one struct (for clients, tests and the bench); `out` holds kFrameSize.
size_t encode_frame(uint8_t* out, uint32_t client_id, uint32_t msg_id, const uint8_t* name,
                    size_t name_len, const uint8_t* text, size_t text_len);
// Rewrites the msg_id of a frame encode_frame wrote, leaving the rest as it is
// (a sender that reuses its frames: the bench).
void set_msg_id(uint8_t* frame, uint32_t msg_id);

}  // namespace legacy
}  // namespace msgs
