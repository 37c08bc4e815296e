// fuzz_frames: the server's parse path for client bytes (wire::parse_hello,
// then wire::parse_frame in a loop), driven like ServiceLoop::parse in
// native/service_loop.cc.
//
// Input: 9 control bytes, then the byte stream a client sent.
//   [0]     limit class: how max_message_bytes is drawn from [1..4]
//           (0: 0..255, 1: 0..65535, 2: 1 MiB or 0..64 MiB, 3: any u32)
//   [1..4]  raw limit (big-endian)
//   [5..8]  two u16 split points: the stream is also fed in up to three reads
// Checks (each from codec.h / docs/protocol.md):
//  - every parse_hello / parse_frame result matches the decision order of
//    docs/protocol.md ("When the parser decides");
//  - kOk: size >= 4+10+name_len, size <= bytes available, name/payload point
//    into the frame, payload_len == size-14-name_len, frame length within
//    10+255+max_message_bytes, need_total == size;
//  - kNeedMore: need_total is 0 (length unreadable) or 4+length, which is
//    > bytes available and <= 4 + max_frame_length;
//  - kError is decided by a prefix and never retracted: every shorter prefix
//    is kNeedMore or the same error; a kOk frame's strict prefixes are all
//    kNeedMore (so no valid stream ever fails on one of its prefixes);
//  - null out-parameters give the same result;
//  - parsing the stream in several reads (with the carry-over the service
//    loop keeps) gives the same frames and the same end state as one read.
#include <vector>

#include "codec.h"
#include "fuzz_common.h"

using namespace msgs::wire;
using fuzz::Exact;

namespace {

uint32_t pick_limit(uint8_t cls, uint32_t raw) {
  switch (cls % 4) {
    case 0: return raw & 0xff;
    case 1: return raw & 0xffff;
    case 2: return (cls & 4) ? 1u << 20 : raw % ((64u << 20) + 1);
    default: return raw;
  }
}

// The spec's decision order for one frame (docs/protocol.md), independent of
// the code: what parse_frame must answer for p[0..n).
struct Expect {
  Parse r;
  ErrCode err;
  size_t need;  // meaningful for kNeedMore and kOk
};

Expect expect_frame(const uint8_t* p, size_t n, uint32_t mmb) {
  if (n < 4) return {Parse::kNeedMore, ErrCode(0), 0};
  uint64_t length = fuzz::be32(p);
  if (length > 10 + 255 + uint64_t(mmb) || length + 4 > UINT32_MAX)
    return {Parse::kError, kErrFrameTooLarge, 0};
  if (length == 0) return {Parse::kError, kErrMalformed, 0};
  size_t total = size_t(4 + length);
  if (n < 5) return {Parse::kNeedMore, ErrCode(0), total};
  if (p[4] != 0x01) return {Parse::kError, kErrUnknownType, 0};
  if (length < 10) return {Parse::kError, kErrMalformed, 0};
  if (n < 6) return {Parse::kNeedMore, ErrCode(0), total};
  if (length < 10u + p[5]) return {Parse::kError, kErrMalformed, 0};
  if (n < total) return {Parse::kNeedMore, ErrCode(0), total};
  return {Parse::kOk, ErrCode(0), total};
}

Expect expect_hello(const uint8_t* p, size_t n) {
  static const uint8_t magic[4] = {'M', 'S', 'G', 'S'};
  for (size_t i = 0; i < 4 && i < n; i++)
    if (p[i] != magic[i]) return {Parse::kError, kErrBadMagic, 0};
  if (n > 4 && p[4] != 1) return {Parse::kError, kErrBadVersion, 0};
  for (size_t i = 5; i < 8 && i < n; i++)
    if (p[i] != 0) return {Parse::kError, kErrBadHello, 0};
  if (n < 12) return {Parse::kNeedMore, ErrCode(0), 0};
  return {Parse::kOk, ErrCode(0), 12};
}

// One parse_hello call with its invariants; returns the result.
Parse checked_hello(const uint8_t* p, size_t n, uint32_t* client_id, ErrCode* err) {
  uint32_t cid = 0xdeadbeef;
  ErrCode e = ErrCode(0);
  Parse r = parse_hello(p, n, &cid, &e);
  Expect x = expect_hello(p, n);
  FUZZ_CHECK(r == x.r);
  if (r == Parse::kError) FUZZ_CHECK(e == x.err);
  if (r == Parse::kOk) FUZZ_CHECK(n >= kHelloSize && cid == fuzz::be32(p + 8));
  FUZZ_CHECK(parse_hello(p, n, nullptr, nullptr) == r);
  // Decided as soon as the bytes allow, and never retracted.
  for (size_t k = 0; k < n && k < kHelloSize; k++) {
    ErrCode ek = ErrCode(0);
    Parse rk = parse_hello(p, k, nullptr, &ek);
    if (r == Parse::kError) FUZZ_CHECK(rk == Parse::kNeedMore || (rk == Parse::kError && ek == e));
    else FUZZ_CHECK(rk == Parse::kNeedMore);
  }
  *client_id = cid;
  *err = e;
  return r;
}

// One parse_frame call on p[0..n) with its invariants.
Parse checked_frame(const uint8_t* p, size_t n, uint32_t mmb, Frame* out, ErrCode* err,
                    size_t* need) {
  Frame f;
  std::memset(&f, 0xa5, sizeof f);
  ErrCode e = ErrCode(0);
  size_t nt = 12345;
  Parse r = parse_frame(p, n, mmb, &f, &e, &nt);
  Expect x = expect_frame(p, n, mmb);
  FUZZ_CHECK(r == x.r);
  const uint64_t max_total = 4 + max_frame_length(mmb);
  switch (r) {
    case Parse::kOk:
      FUZZ_CHECK(f.size == x.need);
      FUZZ_CHECK(f.size >= 4 + 10 + size_t(f.name_len));
      FUZZ_CHECK(f.size <= n);
      FUZZ_CHECK(f.size <= max_total);
      FUZZ_CHECK(nt == f.size);
      FUZZ_CHECK(f.name == p + 14);
      FUZZ_CHECK(f.name_len == p[5]);
      FUZZ_CHECK(f.msg_id == fuzz::be64(p + 6));
      FUZZ_CHECK(f.payload == f.name + f.name_len);
      FUZZ_CHECK(fuzz::within(f.payload, p, n) && f.payload + f.payload_len == p + f.size);
      FUZZ_CHECK(uint64_t(f.payload_len) == uint64_t(f.size) - 4 - 10 - f.name_len);
      // Over max_message_bytes is TOO_LARGE for that message only, and the
      // frame bound keeps it under max_message_bytes + 255.
      FUZZ_CHECK(uint64_t(f.payload_len) + f.name_len <= 255 + uint64_t(mmb));
      break;
    case Parse::kNeedMore:
      FUZZ_CHECK(nt == x.need);
      if (n < 4) FUZZ_CHECK(nt == 0);
      else FUZZ_CHECK(nt > n && nt <= max_total && nt == 4 + size_t(fuzz::be32(p)));
      break;
    case Parse::kError:
      FUZZ_CHECK(e == x.err);
      FUZZ_CHECK(n >= 4);
      FUZZ_CHECK(e == kErrFrameTooLarge || e == kErrMalformed || e == kErrUnknownType);
      break;
  }
  // Optional out-parameters.
  Frame f2;
  FUZZ_CHECK(parse_frame(p, n, mmb, &f2, nullptr, nullptr) == r);
  if (r == Parse::kOk) FUZZ_CHECK(f2.size == f.size && f2.payload_len == f.payload_len);

  // Prefixes: the decision is monotonic in the bytes seen. parse_frame reads
  // at most the first 14 bytes, so those prefixes plus the frame's last
  // missing byte cover every distinct case.
  auto check_prefix = [&](size_t k) {
    if (k >= n) return;
    Frame fk;
    ErrCode ek = ErrCode(0);
    size_t nk = 0;
    Parse rk = parse_frame(p, k, mmb, &fk, &ek, &nk);
    if (r == Parse::kOk) {
      if (k < f.size) FUZZ_CHECK(rk == Parse::kNeedMore && (nk == 0 || nk == f.size));
      else FUZZ_CHECK(rk == Parse::kOk && fk.size == f.size && fk.payload_len == f.payload_len);
    } else if (r == Parse::kError) {
      FUZZ_CHECK(rk == Parse::kNeedMore || (rk == Parse::kError && ek == e));
    } else {
      FUZZ_CHECK(rk == Parse::kNeedMore && (nk == 0 || nk == nt));
    }
  };
  for (size_t k = 0; k < 16; k++) check_prefix(k);
  if (r == Parse::kOk) {
    check_prefix(f.size - 1);
    check_prefix(f.size);
  } else if (r == Parse::kNeedMore && nt) {
    check_prefix(n - 1);
  }
  if (out) *out = f;
  *err = e;
  *need = nt;
  return r;
}

struct Seen {
  size_t offset;  // in the stream
  uint32_t size;
  uint64_t msg_id;
  uint8_t name_len;
  uint32_t payload_len;
  bool too_large;
  bool operator==(const Seen& o) const {
    return offset == o.offset && size == o.size && msg_id == o.msg_id &&
           name_len == o.name_len && payload_len == o.payload_len && too_large == o.too_large;
  }
};

enum class State { kHello, kOpen, kFailed };

struct Conn {
  State state = State::kHello;
  uint32_t client_id = 0;
  ErrCode err = ErrCode(0);
  size_t need_total = 0;
  std::vector<Seen> frames;
};

// ServiceLoop::parse: consumes complete frames from base[0..avail), which
// starts at stream offset `at`; returns the bytes consumed.
size_t parse(Conn* c, const uint8_t* base, size_t avail, size_t at, uint32_t mmb) {
  size_t pos = 0;
  if (c->state == State::kHello) {
    ErrCode err;
    switch (checked_hello(base, avail, &c->client_id, &err)) {
      case Parse::kNeedMore:
        return 0;
      case Parse::kError:
        c->state = State::kFailed;
        c->err = err;
        return 0;
      case Parse::kOk:
        break;
    }
    c->state = State::kOpen;
    pos = kHelloSize;
  }
  while (c->state == State::kOpen && pos < avail) {
    Frame f;
    ErrCode err;
    size_t need = 0;
    Parse r = checked_frame(base + pos, avail - pos, mmb, &f, &err, &need);
    if (r == Parse::kNeedMore) {
      c->need_total = need;
      break;
    }
    if (r == Parse::kError) {
      c->state = State::kFailed;
      c->err = err;
      break;
    }
    c->frames.push_back(Seen{at + pos, f.size, f.msg_id, f.name_len, f.payload_len,
                             f.payload_len > mmb});
    pos += f.size;
    c->need_total = 0;
  }
  FUZZ_CHECK(pos <= avail);
  return pos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Reader rd(data, size);
  uint8_t cls = rd.u8();
  uint32_t mmb = pick_limit(cls, rd.u32());
  size_t split1 = rd.u16(), split2 = rd.u16();
  const uint8_t* stream = rd.rest();
  size_t n = rd.left();

  // One read holding everything.
  Conn one;
  Exact whole(stream, n);
  size_t used = parse(&one, whole.data(), n, 0, mmb);
  if (one.state == State::kHello) FUZZ_CHECK(n < kHelloSize && used == 0);

  // The same bytes in up to three reads, with the unconsumed tail carried over
  // into the next read's buffer as keep_partial does.
  split1 = n ? split1 % (n + 1) : 0;
  split2 = n ? split2 % (n + 1) : 0;
  if (split1 > split2) std::swap(split1, split2);
  size_t cuts[4] = {0, split1, split2, n};
  Conn inc;
  std::vector<uint8_t> carry;
  size_t carry_at = 0;  // stream offset of carry[0]
  for (int i = 0; i < 3; i++) {
    if (inc.state == State::kFailed) break;
    size_t a = cuts[i], b = cuts[i + 1];
    Exact buf(carry.size() + (b - a));
    if (!carry.empty()) std::memcpy(buf.data(), carry.data(), carry.size());
    if (b > a) std::memcpy(buf.data() + carry.size(), stream + a, b - a);
    if (buf.n == 0) continue;
    size_t u = parse(&inc, buf.data(), buf.n, carry_at, mmb);
    carry.assign(buf.data() + u, buf.data() + buf.n);
    carry_at += u;
  }

  FUZZ_CHECK(inc.state == one.state);
  FUZZ_CHECK(inc.err == one.err);
  if (one.state != State::kHello) FUZZ_CHECK(inc.client_id == one.client_id);
  FUZZ_CHECK(inc.frames.size() == one.frames.size());
  for (size_t i = 0; i < one.frames.size(); i++) FUZZ_CHECK(inc.frames[i] == one.frames[i]);
  if (one.state == State::kOpen) {
    FUZZ_CHECK(inc.need_total == one.need_total);
    FUZZ_CHECK(carry_at == used);
  }
  // Frames tile the stream from the end of HELLO, back to back.
  size_t expect_at = kHelloSize;
  for (const Seen& s : one.frames) {
    FUZZ_CHECK(s.offset == expect_at);
    expect_at += s.size;
  }
  if (one.state == State::kOpen) FUZZ_CHECK(used == expect_at);
  return 0;
}
