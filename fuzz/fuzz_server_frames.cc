// fuzz_server_frames: the client-side decoder wire::parse_server_frame (what
// MessageClient-like callers, tests and the bench use on server bytes), and
// the encoders' round trips through the parsers.
//
// Input, used twice:
//  1. as a stream of server frames, parsed one after another until an error
//     or a partial frame. Checks: ACK kOk has size 20 and fields read from the
//     bytes, and encode_ack(status, count, last_msg_id) reproduces the frame
//     (the reserved u16 excepted: the client ignores it, docs/protocol.md only
//     requires the server to send 0); ERR kOk has 2 <= length <= 257, the
//     reason points into the frame, and encode_err reproduces it exactly;
//     kNeedMore means fewer than 4 + length bytes; kError is MALFORMED or
//     UNKNOWN_TYPE, decided by the first 5 bytes and never retracted (every
//     prefix gives kNeedMore or the same error); null out-parameters give the
//     same result.
//  2. as field values for encode_ack / encode_err / encode_hello /
//     encode_hello_ok / encode_msg_header, whose outputs must parse back to
//     the same fields; encode_err must cut a long reason to <= 255 bytes at a
//     UTF-8 character boundary.
#include "codec.h"
#include "fuzz_common.h"

using namespace msgs::wire;
using fuzz::Exact;

namespace {

bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

struct Out {
  Parse r;
  uint8_t type = 0;
  Ack ack{};
  uint8_t code = 0;
  const uint8_t* reason = nullptr;
  size_t reason_len = 0;
  size_t size = 0;
};

Out call(const uint8_t* p, size_t n) {
  Out o;
  o.r = parse_server_frame(p, n, &o.type, &o.ack, &o.code, &o.reason, &o.reason_len, &o.size);
  return o;
}

// One frame at p[0..n), with its invariants; returns the result.
Out checked(const uint8_t* p, size_t n) {
  Out o = call(p, n);
  FUZZ_CHECK(parse_server_frame(p, n, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr) == o.r);
  uint32_t length = n >= 4 ? fuzz::be32(p) : 0;
  switch (o.r) {
    case Parse::kOk: {
      FUZZ_CHECK(n >= 5 && o.type == p[4]);
      FUZZ_CHECK(o.size == 4 + size_t(length) && o.size <= n);
      if (o.type == kTypeAck) {
        FUZZ_CHECK(length == 16 && o.size == kAckFrameSize);
        FUZZ_CHECK(o.ack.status == p[5] && o.ack.count == fuzz::be32(p + 8) &&
                   o.ack.last_msg_id == fuzz::be64(p + 12));
        uint8_t enc[kAckFrameSize];
        FUZZ_CHECK(encode_ack(enc, o.ack.status, o.ack.count, o.ack.last_msg_id) == kAckFrameSize);
        FUZZ_CHECK(enc[6] == 0 && enc[7] == 0);
        FUZZ_CHECK(std::memcmp(enc, p, 6) == 0 && std::memcmp(enc + 8, p + 8, 12) == 0);
        if (p[6] == 0 && p[7] == 0) FUZZ_CHECK(std::memcmp(enc, p, kAckFrameSize) == 0);
      } else {
        FUZZ_CHECK(o.type == kTypeErr);
        FUZZ_CHECK(length >= 2 && length <= 2 + kMaxErrReason);
        FUZZ_CHECK(o.code == p[5] && o.reason == p + 6 && o.reason_len == length - 2);
        FUZZ_CHECK(o.reason + o.reason_len == p + o.size);
        uint8_t enc[kMaxErrFrameSize];
        size_t m = encode_err(enc, o.code, reinterpret_cast<const char*>(o.reason), o.reason_len);
        FUZZ_CHECK(m == o.size && std::memcmp(enc, p, m) == 0);
      }
      break;
    }
    case Parse::kNeedMore:
      FUZZ_CHECK(n < 4 || (length != 0 && (n < 5 || n < 4 + size_t(length))));
      if (n >= 5) FUZZ_CHECK(p[4] == kTypeAck || p[4] == kTypeErr);
      break;
    case Parse::kError:
      FUZZ_CHECK(n >= 4);
      FUZZ_CHECK(o.code == kErrMalformed || o.code == kErrUnknownType);
      if (length == 0) FUZZ_CHECK(o.code == kErrMalformed);
      else FUZZ_CHECK(n >= 5);
      if (o.code == kErrUnknownType) FUZZ_CHECK(p[4] != kTypeAck && p[4] != kTypeErr);
      break;
  }
  // Prefixes: nothing but the first 5 bytes decides an error; a complete
  // frame's strict prefixes all need more.
  auto prefix = [&](size_t k) {
    if (k >= n) return;
    Out ok = call(p, k);
    if (o.r == Parse::kOk) {
      if (k < o.size) FUZZ_CHECK(ok.r == Parse::kNeedMore);
      else FUZZ_CHECK(ok.r == Parse::kOk && ok.size == o.size);
    } else if (o.r == Parse::kError) {
      FUZZ_CHECK(ok.r == Parse::kNeedMore || (ok.r == Parse::kError && ok.code == o.code));
      if (k >= 5) FUZZ_CHECK(ok.r == Parse::kError);
    } else {
      FUZZ_CHECK(ok.r == Parse::kNeedMore);
    }
  };
  for (size_t k = 0; k < 8; k++) prefix(k);
  if (o.r == Parse::kOk) {
    prefix(o.size - 1);
    prefix(o.size);
  } else {
    prefix(n - 1);
  }
  return o;
}

void round_trips(const uint8_t* data, size_t size) {
  fuzz::Reader rd(data, size);
  uint8_t status = rd.u8();
  uint32_t count = rd.u32();
  uint64_t last = rd.u64();

  // ACK
  {
    Exact b(kAckFrameSize);
    FUZZ_CHECK(encode_ack(b.data(), status, count, last) == kAckFrameSize);
    Out o = checked(b.data(), b.n);
    FUZZ_CHECK(o.r == Parse::kOk && o.type == kTypeAck && o.size == kAckFrameSize);
    FUZZ_CHECK(o.ack.status == status && o.ack.count == count && o.ack.last_msg_id == last);
  }
  // HELLO and HELLO_OK
  {
    Exact b(kHelloSize);
    FUZZ_CHECK(encode_hello(b.data(), count) == kHelloSize);
    uint32_t cid = 0;
    ErrCode e;
    FUZZ_CHECK(parse_hello(b.data(), b.n, &cid, &e) == Parse::kOk && cid == count);
    FUZZ_CHECK(encode_hello_ok(b.data(), status, count) == kHelloSize);
    FUZZ_CHECK(std::memcmp(b.data(), "MSGS", 4) == 0 && b.data()[4] == kVersion &&
               b.data()[5] == status && b.data()[6] == 0 && b.data()[7] == 0 &&
               fuzz::be32(b.data() + 8) == count);
  }
  // MSG: header + payload parse back with a limit at least the payload.
  {
    uint8_t name_len = rd.u8();
    uint32_t payload_len = rd.u16() & 0x3fff;
    uint8_t name[255];
    rd.bytes(name, name_len);
    size_t total = 4 + kMsgHeaderSize + name_len + payload_len;
    Exact b(total);
    size_t h = encode_msg_header(b.data(), last, name, name_len, payload_len);
    FUZZ_CHECK(h == 4 + kMsgHeaderSize + name_len);
    rd.bytes(b.data() + h, payload_len);
    Frame f;
    ErrCode e;
    size_t need = 0;
    uint32_t mmb = payload_len + (count & 0xff);
    FUZZ_CHECK(parse_frame(b.data(), b.n, mmb, &f, &e, &need) == Parse::kOk);
    FUZZ_CHECK(f.size == total && f.msg_id == last && f.name_len == name_len &&
               f.payload_len == payload_len && f.name == b.data() + 14 &&
               std::memcmp(f.name, name, name_len) == 0 && f.payload == b.data() + h);
    FUZZ_CHECK(parse_frame(b.data(), b.n - 1, mmb, &f, &e, &need) == Parse::kNeedMore &&
               need == total);
  }
  // ERR: any reason bytes (the rest of the input, possibly over 255 bytes and
  // not valid UTF-8).
  {
    const char* reason = reinterpret_cast<const char*>(rd.rest());
    size_t len = rd.left();
    Exact b(kMaxErrFrameSize);
    size_t m = encode_err(b.data(), status, reason, len);
    FUZZ_CHECK(m >= 6 && m <= kMaxErrFrameSize);
    Out o = checked(b.data(), m);
    FUZZ_CHECK(o.r == Parse::kOk && o.type == kTypeErr && o.code == status && o.size == m);
    size_t cut = o.reason_len;
    FUZZ_CHECK(cut <= kMaxErrReason && cut <= len);
    FUZZ_CHECK(cut == 0 || std::memcmp(o.reason, reason, cut) == 0);
    if (len <= kMaxErrReason) {
      FUZZ_CHECK(cut == len);
    } else {
      // Cut where a character starts, backing off only over continuation bytes.
      FUZZ_CHECK(cut == 0 || !is_cont(uint8_t(reason[cut])));
      for (size_t i = cut + 1; i <= kMaxErrReason; i++) FUZZ_CHECK(is_cont(uint8_t(reason[i])));
    }
  }
  FUZZ_CHECK(err_code_name(status) != nullptr && err_code_name(status)[0] != 0);
  FUZZ_CHECK(ack_status_name(status) != nullptr && ack_status_name(status)[0] != 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1. A stream of server frames, as a client reads it.
  Exact in(data, size);
  size_t pos = 0;
  while (pos < size) {
    Out o = checked(in.data() + pos, size - pos);
    if (o.r != Parse::kOk) break;
    pos += o.size;
  }
  // 2. Encoders.
  round_trips(data, size);
  return 0;
}
