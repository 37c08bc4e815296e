// Wire protocol v1 codec (see codec.h and docs/protocol.md).
//
// The parsers decide as early as the bytes allow: a peer that sends garbage
// gets its ERR after the first wrong byte instead of after a whole frame, and
// an oversized length is refused before its body is buffered.
#include "codec.h"

#include <cstring>

namespace msgs {
namespace wire {
namespace {

const uint8_t kMagic[4] = {'M', 'S', 'G', 'S'};

// Big-endian helpers; byte by byte, so alignment and host order do not matter.
inline uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

inline uint64_t get_u64(const uint8_t* p) {
  return uint64_t(get_u32(p)) << 32 | get_u32(p + 4);
}

inline uint8_t* put_u16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
  return p + 2;
}

inline uint8_t* put_u32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
  return p + 4;
}

inline uint8_t* put_u64(uint8_t* p, uint64_t v) {
  put_u32(p, uint32_t(v >> 32));
  return put_u32(p + 4, uint32_t(v));
}

// Optional out-parameters: callers pass nullptr for what they do not need.
template <class T>
inline void put(T* out, T v) {
  if (out) *out = v;
}

inline Parse fail(ErrCode* err, ErrCode code) {
  put(err, code);
  return Parse::kError;
}

// "MSGS" u8 version u8 flags/status u16 reserved u32 value: the common shape
// of HELLO and HELLO_OK.
size_t put_hello(uint8_t* out, uint8_t flags, uint32_t value) {
  std::memcpy(out, kMagic, 4);
  out[4] = kVersion;
  out[5] = flags;
  put_u16(out + 6, 0);
  put_u32(out + 8, value);
  return kHelloSize;
}

}  // namespace

Parse parse_hello(const uint8_t* p, size_t n, uint32_t* client_id, ErrCode* err) {
  // Each field is judged as soon as its bytes are there.
  for (size_t i = 0; i < 4 && i < n; i++)
    if (p[i] != kMagic[i]) return fail(err, kErrBadMagic);
  if (n > 4 && p[4] != kVersion) return fail(err, kErrBadVersion);
  if (n > 5 && p[5] != 0) return fail(err, kErrBadHello);
  if (n > 6 && p[6] != 0) return fail(err, kErrBadHello);
  if (n > 7 && p[7] != 0) return fail(err, kErrBadHello);
  if (n < kHelloSize) return Parse::kNeedMore;
  put(client_id, get_u32(p + 8));
  return Parse::kOk;
}

Parse parse_hello_flags(const uint8_t* p, size_t n, uint32_t* client_id, uint8_t* flags, ErrCode* err) {
  for (size_t i = 0; i < 4 && i < n; i++)
    if (p[i] != kMagic[i]) return fail(err, kErrBadMagic);
  if (n > 4 && p[4] != kVersion) return fail(err, kErrBadVersion);
  if (n > 5 && (p[5] & ~kHelloFlagAuth) != 0) return fail(err, kErrBadHello);
  if (n > 6 && p[6] != 0) return fail(err, kErrBadHello);
  if (n > 7 && p[7] != 0) return fail(err, kErrBadHello);
  if (n < kHelloSize) return Parse::kNeedMore;
  put(flags, p[5]);
  put(client_id, get_u32(p + 8));
  return Parse::kOk;
}

Parse parse_auth(const uint8_t* p, size_t n, Auth* a, ErrCode* err, size_t* need_total) {
  put(need_total, size_t(0));
  if (n < kLengthSize + 1) return Parse::kNeedMore;
  if (p[4] != kTypeAuth) return fail(err, kErrUnauthenticated);
  uint32_t length = get_u32(p);
  if (length < 3 || length > 2 + kMaxToken) return fail(err, kErrMalformed);
  put(need_total, size_t(kLengthSize) + length);
  if (n < kLengthSize + length) return Parse::kNeedMore;
  if (a) {
    a->size = uint32_t(kLengthSize + length);
    a->mechanism = p[5];
    a->token = p + 6;
    a->token_len = uint16_t(length - 2);
  }
  return Parse::kOk;
}

size_t encode_auth(uint8_t* out, uint8_t mechanism, const uint8_t* token, size_t token_len) {
  uint8_t* p = put_u32(out, uint32_t(2 + token_len));
  *p++ = kTypeAuth;
  *p++ = mechanism;
  std::memcpy(p, token, token_len);
  return kLengthSize + 2 + token_len;
}

Parse parse_hello_ok(const uint8_t* p, size_t n, HelloOk* out, ErrCode* err) {
  for (size_t i = 0; i < 4 && i < n; i++)
    if (p[i] != kMagic[i]) return fail(err, kErrBadMagic);
  if (n < kHelloSize) return Parse::kNeedMore;
  if (out) {
    out->version = p[4];
    out->status = p[5];
    out->max_message_bytes = get_u32(p + 8);
  }
  return Parse::kOk;
}

Parse parse_frame(const uint8_t* p, size_t n, uint32_t max_message_bytes,
                  Frame* f, ErrCode* err, size_t* need_total) {
  put(need_total, size_t(0));
  if (n < kLengthSize) return Parse::kNeedMore;
  uint32_t length = get_u32(p);
  // The second test keeps Frame::size (u32) from wrapping when a caller sets
  // max_message_bytes near 4 GiB; no real configuration gets there.
  if (length > max_frame_length(max_message_bytes) || length > UINT32_MAX - kLengthSize)
    return fail(err, kErrFrameTooLarge);
  if (length == 0) return fail(err, kErrMalformed);  // no room for the type
  put(need_total, size_t(kLengthSize) + length);

  if (n < kLengthSize + 1) return Parse::kNeedMore;
  if (p[4] != kTypeMsg) return fail(err, kErrUnknownType);
  if (length < kMsgHeaderSize) return fail(err, kErrMalformed);

  if (n < kLengthSize + 2) return Parse::kNeedMore;
  uint8_t name_len = p[5];
  if (length < kMsgHeaderSize + name_len) return fail(err, kErrMalformed);

  if (n < kLengthSize + length) return Parse::kNeedMore;
  f->size = uint32_t(kLengthSize + length);
  f->msg_id = get_u64(p + 6);
  f->name = p + kLengthSize + kMsgHeaderSize;
  f->name_len = name_len;
  f->payload = f->name + name_len;
  f->payload_len = uint32_t(length - kMsgHeaderSize - name_len);
  return Parse::kOk;
}

size_t encode_hello(uint8_t* out, uint32_t client_id) {
  return put_hello(out, 0, client_id);
}

size_t encode_hello_ok(uint8_t* out, uint8_t status, uint32_t max_message_bytes) {
  return put_hello(out, status, max_message_bytes);
}

size_t encode_ack(uint8_t* out, uint8_t status, uint32_t count, uint64_t last_msg_id) {
  uint8_t* p = put_u32(out, uint32_t(kAckFrameSize - kLengthSize));
  *p++ = kTypeAck;
  *p++ = status;
  p = put_u16(p, 0);
  p = put_u32(p, count);
  put_u64(p, last_msg_id);
  return kAckFrameSize;
}

// Longest prefix of s (at most max bytes) that does not end inside a UTF-8
// character: back off while the first byte left out is a continuation byte.
static size_t utf8_cut(const char* s, size_t n, size_t max) {
  if (n <= max) return n;
  size_t cut = max;
  while (cut > 0 && (uint8_t(s[cut]) & 0xC0) == 0x80) cut--;
  return cut;
}

size_t encode_err(uint8_t* out, uint8_t code, const char* reason, size_t reason_len) {
  size_t len = utf8_cut(reason, reason_len, kMaxErrReason);
  uint8_t* p = put_u32(out, uint32_t(2 + len));
  *p++ = kTypeErr;
  *p++ = code;
  if (len) std::memcpy(p, reason, len);
  return kLengthSize + 2 + len;
}

size_t encode_msg_header(uint8_t* out, uint64_t msg_id, const uint8_t* name,
                         uint8_t name_len, uint32_t payload_len) {
  uint8_t* p = put_u32(out, uint32_t(kMsgHeaderSize + name_len + payload_len));
  *p++ = kTypeMsg;
  *p++ = name_len;
  p = put_u64(p, msg_id);
  if (name_len) std::memcpy(p, name, name_len);
  return kLengthSize + kMsgHeaderSize + name_len;
}

// On kError, *err_code is set to the reason (kErrMalformed or
// kErrUnknownType) rather than to a received ERR code.
Parse parse_server_frame(const uint8_t* p, size_t n, uint8_t* type, Ack* ack,
                         uint8_t* err_code, const uint8_t** reason,
                         size_t* reason_len, size_t* size) {
  if (n < kLengthSize) return Parse::kNeedMore;
  uint32_t length = get_u32(p);
  if (length == 0) {
    put(err_code, uint8_t(kErrMalformed));
    return Parse::kError;
  }
  if (n < kLengthSize + 1) return Parse::kNeedMore;
  uint8_t t = p[4];
  put(type, t);

  bool ok_length;
  if (t == kTypeAck) {
    ok_length = length == kAckFrameSize - kLengthSize;
  } else if (t == kTypeErr) {
    ok_length = length >= 2 && length <= 2 + kMaxErrReason;
  } else {
    put(err_code, uint8_t(kErrUnknownType));
    return Parse::kError;
  }
  if (!ok_length) {
    put(err_code, uint8_t(kErrMalformed));
    return Parse::kError;
  }
  if (n < kLengthSize + length) return Parse::kNeedMore;

  if (t == kTypeAck) {
    if (ack) {
      ack->status = p[5];
      ack->count = get_u32(p + 8);
      ack->last_msg_id = get_u64(p + 12);
    }
  } else {
    put(err_code, p[5]);
    put(reason, static_cast<const uint8_t*>(p + 6));
    put(reason_len, size_t(length - 2));
  }
  put(size, size_t(kLengthSize) + length);
  return Parse::kOk;
}

const char* err_code_name(uint8_t code) {
  switch (code) {
    case kErrBadMagic: return "BAD_MAGIC";
    case kErrBadVersion: return "BAD_VERSION";
    case kErrBadHello: return "BAD_HELLO";
    case kErrUnknownType: return "UNKNOWN_TYPE";
    case kErrFrameTooLarge: return "FRAME_TOO_LARGE";
    case kErrMalformed: return "MALFORMED";
    case kErrBusy: return "BUSY";
    case kErrShuttingDown: return "SHUTTING_DOWN";
    case kErrIdleTimeout: return "IDLE_TIMEOUT";
    case kErrHandshakeTimeout: return "HANDSHAKE_TIMEOUT";
    case kErrSlowFrame: return "SLOW_FRAME";
    case kErrInternal: return "INTERNAL";
    case kErrUnauthenticated: return "UNAUTHENTICATED";
    case kErrForbidden: return "FORBIDDEN";
  }
  return "UNKNOWN";
}

const char* ack_status_name(uint8_t status) {
  switch (status) {
    case kAckOk: return "OK";
    case kAckTooLarge: return "TOO_LARGE";
    case kAckWriteFailed: return "WRITE_FAILED";
    case kAckShuttingDown: return "SHUTTING_DOWN";
    case kAckReplicationFailed: return "REPLICATION_FAILED";
  }
  return "UNKNOWN";
}

}  // namespace wire

namespace legacy {

wire::Parse parse_frame(const uint8_t* p, size_t n, Frame* f) {
  if (n < kFrameSize) return wire::Parse::kNeedMore;
  f->client_id = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
  f->msg_id = uint32_t(p[4]) << 24 | uint32_t(p[5]) << 16 | uint32_t(p[6]) << 8 | p[7];
  f->name = p + 8;
  const void* nul = std::memchr(f->name, 0, kNameSize);
  f->name_len = uint8_t(nul ? static_cast<const uint8_t*>(nul) - f->name : kNameSize);
  f->text = p + 8 + kNameSize;
  // The original client NUL-terminates, but a full buffer without a NUL is
  // taken whole rather than read past.
  nul = std::memchr(f->text, 0, kBufferSize);
  f->text_len = uint32_t(nul ? static_cast<const uint8_t*>(nul) - f->text : kBufferSize);
  return wire::Parse::kOk;
}

size_t encode_frame(uint8_t* out, uint32_t client_id, uint32_t msg_id, const uint8_t* name,
                    size_t name_len, const uint8_t* text, size_t text_len) {
  std::memset(out, 0, kFrameSize);
  for (int i = 0; i < 4; i++) {
    out[i] = uint8_t(client_id >> (24 - 8 * i));
    out[4 + i] = uint8_t(msg_id >> (24 - 8 * i));
  }
  // memcpy with a null pointer is undefined even for 0 bytes (an empty vector's data()).
  if (name_len > 0) std::memcpy(out + 8, name, name_len < kNameSize ? name_len : kNameSize);
  if (text_len > 0) std::memcpy(out + 8 + kNameSize, text, text_len < kBufferSize ? text_len : kBufferSize);
  return kFrameSize;
}

void set_msg_id(uint8_t* frame, uint32_t msg_id) {
  for (int i = 0; i < 4; i++) frame[kMsgIdOffset + i] = uint8_t(msg_id >> (24 - 8 * i));
}

}  // namespace legacy
}  // namespace msgs
