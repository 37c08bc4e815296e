// fuzz_auth: the server's parse path for an authenticating client
// (wire::parse_hello_flags, then wire::parse_auth when the HELLO announced
// it), driven like ServiceLoop::parse_hello / parse_auth in
// native/service_loop.cc.
//
// Input: the byte stream a client sent.
// Checks (codec.h, docs/protocol.md "Authentication"):
//  - parse_hello_flags follows the decision order: magic, version, flags
//    (only bit 0 may be set), reserved, then 12 bytes;
//  - parse_auth follows its decision order: 5 bytes to see the type (not
//    0x02: UNAUTHENTICATED), then the length (token of 1..1024 bytes, else
//    MALFORMED), then the whole frame; it never asks for more than
//    kMaxAuthFrameSize bytes;
//  - kOk: size == 4 + length, the token lies inside the input, mechanism and
//    token are the input's bytes; encode_auth of them gives the frame back;
//  - a decision is made by a prefix and never retracted: shorter prefixes
//    are kNeedMore or the same error; a kOk frame's strict prefixes are all
//    kNeedMore;
//  - null out-parameters give the same result.
#include <cstring>
#include <vector>

#include "codec.h"
#include "fuzz_common.h"

using namespace msgs::wire;
using fuzz::Exact;

namespace {

struct Expect {
  Parse r;
  ErrCode err;
  size_t need;
};

Expect expect_hello(const uint8_t* p, size_t n) {
  static const uint8_t magic[4] = {'M', 'S', 'G', 'S'};
  for (size_t i = 0; i < 4 && i < n; i++)
    if (p[i] != magic[i]) return {Parse::kError, kErrBadMagic, 0};
  if (n > 4 && p[4] != 1) return {Parse::kError, kErrBadVersion, 0};
  if (n > 5 && (p[5] & ~1) != 0) return {Parse::kError, kErrBadHello, 0};
  for (size_t i = 6; i < 8 && i < n; i++)
    if (p[i] != 0) return {Parse::kError, kErrBadHello, 0};
  if (n < 12) return {Parse::kNeedMore, ErrCode(0), 0};
  return {Parse::kOk, ErrCode(0), 12};
}

Expect expect_auth(const uint8_t* p, size_t n) {
  if (n < 5) return {Parse::kNeedMore, ErrCode(0), 0};
  if (p[4] != 0x02) return {Parse::kError, kErrUnauthenticated, 0};
  uint64_t length = fuzz::be32(p);
  if (length < 3 || length > 2 + 1024) return {Parse::kError, kErrMalformed, 0};
  size_t total = size_t(4 + length);
  if (n < total) return {Parse::kNeedMore, ErrCode(0), total};
  return {Parse::kOk, ErrCode(0), total};
}

void check_hello(const uint8_t* p, size_t n, uint8_t* flags_out) {
  Exact in(p, n);
  uint32_t cid = 0;
  uint8_t flags = 0xee;
  ErrCode err = ErrCode(0);
  Parse r = parse_hello_flags(in.data(), n, &cid, &flags, &err);
  Expect e = expect_hello(p, n);
  FUZZ_CHECK(r == e.r);
  if (r == Parse::kError) FUZZ_CHECK(err == e.err);
  FUZZ_CHECK(parse_hello_flags(in.data(), n, nullptr, nullptr, nullptr) == r);
  if (r == Parse::kOk) {
    FUZZ_CHECK(cid == fuzz::be32(p + 8));
    FUZZ_CHECK(flags == p[5] && (flags & ~1) == 0);
    // The strict parser agrees whenever no flag is set.
    if (flags == 0) FUZZ_CHECK(parse_hello(in.data(), n, nullptr, nullptr) == Parse::kOk);
    for (size_t k = 0; k < 12; k++) FUZZ_CHECK(parse_hello_flags(in.data(), k, nullptr, nullptr, nullptr) == Parse::kNeedMore);
  }
  *flags_out = r == Parse::kOk ? flags : 0xff;
}

void check_auth(const uint8_t* p, size_t n) {
  Exact in(p, n);
  Auth a{};
  ErrCode err = ErrCode(0);
  size_t need = 12345;
  Parse r = parse_auth(in.data(), n, &a, &err, &need);
  Expect e = expect_auth(p, n);
  FUZZ_CHECK(r == e.r);
  FUZZ_CHECK(parse_auth(in.data(), n, nullptr, nullptr, nullptr) == r);
  if (r == Parse::kError) {
    FUZZ_CHECK(err == e.err);
    for (size_t k = 0; k < n; k++) {
      ErrCode ek = ErrCode(0);
      Parse rk = parse_auth(in.data(), k, nullptr, &ek, nullptr);
      FUZZ_CHECK(rk == Parse::kNeedMore || (rk == Parse::kError && ek == err));
    }
    return;
  }
  if (r == Parse::kNeedMore) {
    FUZZ_CHECK(need == e.need);
    FUZZ_CHECK(need == 0 || (need > n && need <= kMaxAuthFrameSize));
    return;
  }
  FUZZ_CHECK(a.size == e.need && need == e.need && a.size <= n && a.size <= kMaxAuthFrameSize);
  FUZZ_CHECK(a.token == in.data() + 6 && a.token_len == a.size - 6);
  FUZZ_CHECK(a.token_len >= 1 && a.token_len <= kMaxToken);
  FUZZ_CHECK(a.mechanism == p[5]);
  for (size_t k = 0; k < a.size; k++) FUZZ_CHECK(parse_auth(in.data(), k, nullptr, nullptr, nullptr) == Parse::kNeedMore);
  std::vector<uint8_t> out(kMaxAuthFrameSize);
  FUZZ_CHECK(encode_auth(out.data(), a.mechanism, a.token, a.token_len) == a.size);
  FUZZ_CHECK(std::memcmp(out.data(), p, a.size) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t flags = 0xff;
  check_hello(data, size, &flags);
  // What follows a HELLO that announced AUTH, and the stream on its own
  // (the parser must hold for any bytes, not only after a good HELLO).
  if (flags == 1) check_auth(data + 12, size - 12);
  check_auth(data, size);
  return 0;
}
