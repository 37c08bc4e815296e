// fuzz_legacy: the legacy protocol's struct parser (legacy::parse_frame,
// native/codec.cc), driven like ServiceLoop::parse_legacy: whole 1160-byte
// structs are taken from the front of the stream until fewer remain.
//
// Input: u16 split point, then the stream.
// Checks (codec.h, docs/legacy.md): kNeedMore iff fewer than 1160 bytes,
// otherwise kOk (never kError); client_id / msg_id are the big-endian u32s;
// name and text point into their fields and end at the first NUL (the whole
// field when there is none, never past it); encode_frame of the parsed fields
// gives a struct that parses back to the same fields; and reading the stream
// in two pieces (with the carry-over) gives the same messages as one read.
#include <vector>

#include "codec.h"
#include "fuzz_common.h"

using namespace msgs;
using fuzz::Exact;

namespace {

struct Msg {
  uint32_t client_id, msg_id;
  std::vector<uint8_t> name, text;
  bool operator==(const Msg& o) const {
    return client_id == o.client_id && msg_id == o.msg_id && name == o.name && text == o.text;
  }
};

Msg checked(const uint8_t* p, size_t n) {
  legacy::Frame f;
  FUZZ_CHECK(legacy::parse_frame(p, n, &f) == wire::Parse::kOk);
  FUZZ_CHECK(n >= legacy::kFrameSize);
  FUZZ_CHECK(f.client_id == fuzz::be32(p) && f.msg_id == fuzz::be32(p + 4));
  FUZZ_CHECK(f.name == p + 8 && f.name_len <= legacy::kNameSize);
  FUZZ_CHECK(f.text == p + 8 + legacy::kNameSize && f.text_len <= legacy::kBufferSize);
  FUZZ_CHECK(std::memchr(f.name, 0, f.name_len) == nullptr);
  if (f.name_len < legacy::kNameSize) FUZZ_CHECK(f.name[f.name_len] == 0);
  FUZZ_CHECK(f.text_len == 0 || std::memchr(f.text, 0, f.text_len) == nullptr);
  if (f.text_len < legacy::kBufferSize) FUZZ_CHECK(f.text[f.text_len] == 0);

  Exact re(legacy::kFrameSize);
  FUZZ_CHECK(legacy::encode_frame(re.data(), f.client_id, f.msg_id, f.name, f.name_len, f.text,
                                  f.text_len) == legacy::kFrameSize);
  legacy::Frame g;
  FUZZ_CHECK(legacy::parse_frame(re.data(), re.n, &g) == wire::Parse::kOk);
  FUZZ_CHECK(g.client_id == f.client_id && g.msg_id == f.msg_id && g.name_len == f.name_len &&
             g.text_len == f.text_len);
  FUZZ_CHECK(std::memcmp(g.name, f.name, f.name_len) == 0);
  FUZZ_CHECK(f.text_len == 0 || std::memcmp(g.text, f.text, f.text_len) == 0);
  return Msg{f.client_id, f.msg_id, {f.name, f.name + f.name_len}, {f.text, f.text + f.text_len}};
}

// ServiceLoop::parse_legacy: returns the bytes consumed.
size_t parse(const uint8_t* base, size_t avail, std::vector<Msg>* out) {
  size_t pos = 0;
  legacy::Frame f;
  while (legacy::parse_frame(base + pos, avail - pos, &f) == wire::Parse::kOk) {
    out->push_back(checked(base + pos, avail - pos));
    pos += legacy::kFrameSize;
  }
  FUZZ_CHECK(avail - pos < legacy::kFrameSize);
  for (size_t k : {size_t(0), avail - pos})
    FUZZ_CHECK(legacy::parse_frame(base + pos, k, &f) == wire::Parse::kNeedMore);
  return pos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Reader rd(data, size);
  size_t split = rd.u16();
  const uint8_t* stream = rd.rest();
  size_t n = rd.left();
  split = n ? split % (n + 1) : 0;

  std::vector<Msg> one, two;
  Exact whole(stream, n);
  size_t used = parse(whole.data(), n, &one);
  FUZZ_CHECK(used == one.size() * legacy::kFrameSize && n - used < legacy::kFrameSize);

  Exact a(stream, split);
  size_t u = parse(a.data(), a.n, &two);
  Exact b(split - u + (n - split));
  if (split > u) std::memcpy(b.data(), a.data() + u, split - u);
  if (n > split) std::memcpy(b.data() + (split - u), stream + split, n - split);
  u += parse(b.data(), b.n, &two);
  FUZZ_CHECK(u == used);
  FUZZ_CHECK(one.size() == two.size());
  for (size_t i = 0; i < one.size(); i++) FUZZ_CHECK(one[i] == two[i]);
  return 0;
}
