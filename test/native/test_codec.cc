// Wire codec: golden vectors (test/vectors/frames.txt, legacy.txt) both ways,
// plus the incremental-parse properties the service loop and the load
// generator (bench/loadgen/, which uses this codec for every byte) depend on.
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "codec.h"

using namespace msgs::wire;
using Bytes = std::vector<uint8_t>;

static Bytes slice(const uint8_t* p, size_t n) { return Bytes(p, p + n); }

static void vec_hello(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  uint8_t out[kHelloSize];
  CHECK_EQ(encode_hello(out, uint32_t(v.num("client_id"))), kHelloSize);
  CHECK_EQ(slice(out, kHelloSize), hex);
  uint32_t id = 0;
  ErrCode err{};
  CHECK(parse_hello(hex.data(), hex.size(), &id, &err) == Parse::kOk);
  CHECK_EQ(id, v.num("client_id"));
  // Every strict prefix of a good HELLO asks for more bytes.
  int wrong = 0;
  for (size_t n = 0; n < hex.size(); n++)
    if (parse_hello(hex.data(), n, &id, &err) != Parse::kNeedMore) wrong++;
  CHECK_EQ(wrong, 0);
}

static void vec_hello_ok(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  uint8_t out[kHelloSize];
  CHECK_EQ(encode_hello_ok(out, uint8_t(v.num("status")), uint32_t(v.num("max_message_bytes"))), kHelloSize);
  CHECK_EQ(slice(out, kHelloSize), hex);
  // The client side: parse_hello_ok gives the fields back.
  HelloOk ok{};
  ErrCode err{};
  CHECK(parse_hello_ok(hex.data(), hex.size(), &ok, &err) == Parse::kOk);
  CHECK_EQ(ok.version, kVersion);
  CHECK_EQ(ok.status, v.num("status"));
  CHECK_EQ(ok.max_message_bytes, v.num("max_message_bytes"));
  int wrong = 0;
  for (size_t n = 0; n < hex.size(); n++)
    if (parse_hello_ok(hex.data(), n, &ok, &err) != Parse::kNeedMore) wrong++;
  CHECK_EQ(wrong, 0);
}

// What a client may read instead of HELLO_OK (an ERR, e.g. BUSY) or after
// it (ACK), or any other bytes without the magic: parse_hello_ok says kError
// (BAD_MAGIC) as soon as the first wrong byte is there (for a frame, its
// first byte), kNeedMore before; the reader then goes on to parse_server_frame.
static void not_hello_ok(const Bytes& hex) {
  static const uint8_t magic[4] = {'M', 'S', 'G', 'S'};
  size_t bad = 0;
  while (bad < 4 && bad < hex.size() && hex[bad] == magic[bad]) bad++;
  CHECK(bad < 4 && bad < hex.size());
  HelloOk ok{};
  ErrCode err{};
  CHECK(parse_hello_ok(hex.data(), hex.size(), &ok, &err) == Parse::kError);
  CHECK_EQ(err, kErrBadMagic);
  CHECK(parse_hello_ok(hex.data(), bad + 1, &ok, &err) == Parse::kError);
  CHECK(parse_hello_ok(hex.data(), bad, &ok, &err) == Parse::kNeedMore);
}

static void vec_msg(const check::Vector& v) {
  Bytes hex = v.bytes("hex"), name = v.bytes("name_hex"), payload = v.bytes("payload_hex");
  uint32_t max = v.has("max_message_bytes") ? uint32_t(v.num("max_message_bytes")) : 1u << 20;

  Bytes out(kLengthSize + kMsgHeaderSize + name.size() + payload.size());
  size_t h = encode_msg_header(out.data(), v.num("msg_id"), name.data(), uint8_t(name.size()),
                               uint32_t(payload.size()));
  CHECK_EQ(h, kLengthSize + kMsgHeaderSize + name.size());
  if (!payload.empty()) std::memcpy(out.data() + h, payload.data(), payload.size());
  CHECK_EQ(out, hex);

  Frame f{};
  ErrCode err{};
  size_t need = 0;
  CHECK(parse_frame(hex.data(), hex.size(), max, &f, &err, &need) == Parse::kOk);
  CHECK_EQ(f.size, hex.size());
  CHECK_EQ(f.msg_id, v.num("msg_id"));
  CHECK_EQ(slice(f.name, f.name_len), name);
  CHECK_EQ(slice(f.payload, f.payload_len), payload);

  // Prefixes: kNeedMore; need_total known from 4 bytes on.
  int wrong = 0;
  for (size_t n = 0; n < hex.size(); n++) {
    Parse r = parse_frame(hex.data(), n, max, &f, &err, &need);
    if (r != Parse::kNeedMore || need != (n < 4 ? 0 : hex.size())) wrong++;
  }
  CHECK_EQ(wrong, 0);
  // Trailing bytes (the next frame) do not change the result.
  Bytes two = hex;
  two.insert(two.end(), hex.begin(), hex.end());
  CHECK(parse_frame(two.data(), two.size(), max, &f, &err, nullptr) == Parse::kOk);
  CHECK_EQ(f.size, hex.size());
}

static void vec_ack(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  uint8_t out[kAckFrameSize];
  CHECK_EQ(encode_ack(out, uint8_t(v.num("status")), uint32_t(v.num("count")), v.num("last_msg_id")),
           kAckFrameSize);
  CHECK_EQ(slice(out, kAckFrameSize), hex);

  uint8_t type = 0;
  Ack ack{};
  size_t size = 0;
  CHECK(parse_server_frame(hex.data(), hex.size(), &type, &ack, nullptr, nullptr, nullptr, &size) ==
        Parse::kOk);
  CHECK_EQ(type, kTypeAck);
  CHECK_EQ(ack.status, v.num("status"));
  CHECK_EQ(ack.count, v.num("count"));
  CHECK_EQ(ack.last_msg_id, v.num("last_msg_id"));
  CHECK_EQ(size, kAckFrameSize);
  not_hello_ok(hex);
  int wrong = 0;
  for (size_t n = 0; n < hex.size(); n++)
    if (parse_server_frame(hex.data(), n, &type, &ack, nullptr, nullptr, nullptr, &size) != Parse::kNeedMore)
      wrong++;
  CHECK_EQ(wrong, 0);
}

// err (reason_hex is sent as is) and err_cut (input_hex is cut to reason_hex).
static void vec_err(const check::Vector& v) {
  Bytes hex = v.bytes("hex"), reason = v.bytes("reason_hex");
  Bytes input = v.has("input_hex") ? v.bytes("input_hex") : reason;
  uint8_t out[kMaxErrFrameSize];
  size_t n = encode_err(out, uint8_t(v.num("code")), reinterpret_cast<const char*>(input.data()),
                        input.size());
  CHECK_EQ(slice(out, n), hex);

  uint8_t type = 0, code = 0;
  const uint8_t* r = nullptr;
  size_t rlen = 0, size = 0;
  CHECK(parse_server_frame(hex.data(), hex.size(), &type, nullptr, &code, &r, &rlen, &size) == Parse::kOk);
  CHECK_EQ(type, kTypeErr);
  CHECK_EQ(code, v.num("code"));
  CHECK_EQ(slice(r, rlen), reason);
  CHECK_EQ(size, hex.size());
  not_hello_ok(hex);
}

static void vec_bad_hello(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  uint32_t id = 0;
  ErrCode err{};
  CHECK(parse_hello(hex.data(), hex.size(), &id, &err) == Parse::kError);
  CHECK_EQ(err, v.num("err"));
  // The same magic check on the client side.
  if (v.num("err") == kErrBadMagic) not_hello_ok(hex);
}

static void vec_need_more_hello(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  uint32_t id = 0;
  ErrCode err{};
  CHECK(parse_hello(hex.data(), hex.size(), &id, &err) == Parse::kNeedMore);
}

static void vec_bad_client_frame(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  Frame f{};
  ErrCode err{};
  CHECK(parse_frame(hex.data(), hex.size(), uint32_t(v.num("max_message_bytes")), &f, &err, nullptr) ==
        Parse::kError);
  CHECK_EQ(err, v.num("err"));
}

static void vec_need_more_frame(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  Frame f{};
  ErrCode err{};
  size_t need = 12345;
  CHECK(parse_frame(hex.data(), hex.size(), uint32_t(v.num("max_message_bytes")), &f, &err, &need) ==
        Parse::kNeedMore);
  CHECK_EQ(need, v.num("need_total"));
}

static void vec_bad_server_frame(const check::Vector& v) {
  Bytes hex = v.bytes("hex");
  uint8_t type = 0, code = 0;
  Ack ack{};
  CHECK(parse_server_frame(hex.data(), hex.size(), &type, &ack, &code, nullptr, nullptr, nullptr) ==
        Parse::kError);
  CHECK_EQ(code, v.num("err"));
}

static void test_vectors() {
  int seen = 0;
  for (const auto& v : check::load_vectors("frames.txt")) {
    check::context() = "frames.txt:" + std::to_string(v.line) + " " + v.kind;
    seen++;
    if (v.kind == "hello") vec_hello(v);
    else if (v.kind == "hello_ok") vec_hello_ok(v);
    else if (v.kind == "msg") vec_msg(v);
    else if (v.kind == "ack") vec_ack(v);
    else if (v.kind == "err" || v.kind == "err_cut") vec_err(v);
    else if (v.kind == "bad_hello") vec_bad_hello(v);
    else if (v.kind == "need_more_hello") vec_need_more_hello(v);
    else if (v.kind == "bad_client_frame") vec_bad_client_frame(v);
    else if (v.kind == "need_more_frame") vec_need_more_frame(v);
    else if (v.kind == "bad_server_frame") vec_bad_server_frame(v);
    else CHECK(!"unknown vector kind");
  }
  check::context().clear();
  CHECK(seen > 60);
}

// legacy.txt: the original protocol's structs and its "ack".
static void vec_legacy_frame(const check::Vector& v) {
  namespace legacy = msgs::legacy;
  Bytes hex = v.bytes("hex"), name = v.bytes("name_hex"), text = v.bytes("text_hex");
  uint32_t cid = uint32_t(v.num("client_id")), mid = uint32_t(v.num("msg_id"));
  Bytes out(legacy::kFrameSize, 0xee);
  CHECK_EQ(legacy::encode_frame(out.data(), cid, mid, name.data(), name.size(), text.data(), text.size()),
           legacy::kFrameSize);
  CHECK_EQ(out, hex);
  // set_msg_id: the same struct written with other ids, then its id replaced.
  for (uint32_t other : {0u, mid ^ 0xffffffffu, 12345u}) {
    legacy::encode_frame(out.data(), cid, other, name.data(), name.size(), text.data(), text.size());
    legacy::set_msg_id(out.data(), mid);
    CHECK_EQ(out, hex);
  }
  legacy::Frame f{};
  CHECK(legacy::parse_frame(hex.data(), hex.size(), &f) == Parse::kOk);
  CHECK_EQ(f.client_id, cid);
  CHECK_EQ(f.msg_id, mid);
  CHECK_EQ(slice(f.name, f.name_len), name);
  CHECK_EQ(slice(f.text, f.text_len), text);
  int wrong = 0;
  for (size_t n : {size_t(0), size_t(1), size_t(8), size_t(136), legacy::kFrameSize - 1})
    if (legacy::parse_frame(hex.data(), n, &f) != Parse::kNeedMore) wrong++;
  CHECK_EQ(wrong, 0);
}

static void test_legacy_vectors() {
  int frames = 0, acks = 0;
  for (const auto& v : check::load_vectors("legacy.txt")) {
    check::context() = "legacy.txt:" + std::to_string(v.line) + " " + v.kind;
    if (v.kind == "legacy_frame") {
      frames++;
      vec_legacy_frame(v);
    } else if (v.kind == "legacy_ack") {
      acks++;
      CHECK_EQ(slice(msgs::legacy::kAck, msgs::legacy::kAckSize), v.bytes("hex"));
    } else {
      CHECK(!"unknown vector kind");
    }
  }
  check::context().clear();
  CHECK(frames >= 5);
  CHECK_EQ(acks, 1);
}

// HELLO_OK fields are reported, not judged: a version or status the caller
// does not accept still parses (the caller decides), a wrong magic byte anywhere
// in the first four fails.
static void test_hello_ok_fields() {
  uint8_t b[kHelloSize];
  encode_hello_ok(b, 5, 77);
  b[4] = 2;
  HelloOk ok{};
  ErrCode err{};
  CHECK(parse_hello_ok(b, sizeof b, &ok, &err) == Parse::kOk);
  CHECK_EQ(ok.version, 2);
  CHECK_EQ(ok.status, 5);
  CHECK_EQ(ok.max_message_bytes, 77u);
  CHECK(parse_hello_ok(b, sizeof b, nullptr, nullptr) == Parse::kOk);
  for (size_t i = 0; i < 4; i++) {
    encode_hello_ok(b, 0, 1);
    b[i] ^= 0x20;
    CHECK(parse_hello_ok(b, i + 1, &ok, &err) == Parse::kError);
    CHECK_EQ(err, kErrBadMagic);
  }
}

// A stream of frames fed one byte at a time parses to the same frames.
static void test_byte_by_byte() {
  Bytes stream;
  const char* names[] = {"", "a", "orders"};
  for (uint64_t id = 1; id <= 30; id++) {
    const char* name = names[id % 3];
    uint8_t nl = uint8_t(std::strlen(name));
    Bytes payload(id * 7, uint8_t(id));
    size_t at = stream.size();
    stream.resize(at + kLengthSize + kMsgHeaderSize + nl + payload.size());
    size_t h = encode_msg_header(stream.data() + at, id, reinterpret_cast<const uint8_t*>(name), nl,
                                 uint32_t(payload.size()));
    std::memcpy(stream.data() + at + h, payload.data(), payload.size());
  }
  size_t start = 0, got = 0;
  bool ok = true;
  for (size_t end = 1; end <= stream.size(); end++) {
    Frame f{};
    ErrCode err{};
    Parse r = parse_frame(stream.data() + start, end - start, 1000, &f, &err, nullptr);
    if (r == Parse::kError) { ok = false; break; }
    if (r == Parse::kOk) {
      got++;
      if (f.msg_id != got || f.payload_len != got * 7 || f.name_len != std::strlen(names[got % 3])) ok = false;
      start += f.size;
    }
  }
  CHECK(ok);
  CHECK_EQ(got, 30u);
  CHECK_EQ(start, stream.size());
}

// FRAME_TOO_LARGE is decided from the 4 length bytes alone.
static void test_too_large_early() {
  for (uint32_t max : {0u, 100u, 1u << 20}) {
    uint8_t b[4];
    uint32_t len = uint32_t(max_frame_length(max) + 1);
    b[0] = uint8_t(len >> 24); b[1] = uint8_t(len >> 16); b[2] = uint8_t(len >> 8); b[3] = uint8_t(len);
    Frame f{};
    ErrCode err{};
    CHECK(parse_frame(b, 4, max, &f, &err, nullptr) == Parse::kError);
    CHECK_EQ(err, kErrFrameTooLarge);
    len--;
    b[3] = uint8_t(len); b[2] = uint8_t(len >> 8); b[1] = uint8_t(len >> 16);
    size_t need = 0;
    CHECK(parse_frame(b, 4, max, &f, &err, &need) == Parse::kNeedMore);
    CHECK_EQ(need, 4 + size_t(len));
  }
}

// A MSG with name_len 255 and max_message_bytes 0 is at the bound exactly.
static void test_empty_payload_limit() {
  uint8_t name[255];
  std::memset(name, 'n', 255);
  uint8_t out[4 + 10 + 255];
  size_t n = encode_msg_header(out, 9, name, 255, 0);
  Frame f{};
  ErrCode err{};
  CHECK(parse_frame(out, n, 0, &f, &err, nullptr) == Parse::kOk);
  CHECK_EQ(f.payload_len, 0u);
  CHECK_EQ(f.name_len, 255);
}

static void test_names() {
  CHECK_EQ(std::string(err_code_name(kErrBadMagic)), "BAD_MAGIC");
  CHECK_EQ(std::string(err_code_name(kErrFrameTooLarge)), "FRAME_TOO_LARGE");
  CHECK_EQ(std::string(err_code_name(kErrHandshakeTimeout)), "HANDSHAKE_TIMEOUT");
  CHECK_EQ(std::string(err_code_name(kErrInternal)), "INTERNAL");
  CHECK_EQ(std::string(err_code_name(0)), "UNKNOWN");
  CHECK_EQ(std::string(err_code_name(13)), "UNAUTHENTICATED");
  CHECK_EQ(std::string(err_code_name(15)), "UNKNOWN");
  CHECK_EQ(std::string(ack_status_name(kAckOk)), "OK");
  CHECK_EQ(std::string(ack_status_name(kAckTooLarge)), "TOO_LARGE");
  CHECK_EQ(std::string(ack_status_name(kAckWriteFailed)), "WRITE_FAILED");
  CHECK_EQ(std::string(ack_status_name(kAckShuttingDown)), "SHUTTING_DOWN");
  CHECK_EQ(std::string(ack_status_name(kAckReplicationFailed)), "REPLICATION_FAILED");
  CHECK_EQ(std::string(ack_status_name(5)), "UNKNOWN");
  // Every code 1..12 has a distinct real name.
  int unknown = 0;
  for (int c = 1; c <= 12; c++) unknown += std::string(err_code_name(uint8_t(c))) == "UNKNOWN";
  CHECK_EQ(unknown, 0);
}

int main() {
  test_vectors();
  test_legacy_vectors();
  test_hello_ok_fields();
  test_byte_by_byte();
  test_too_large_early();
  test_empty_payload_limit();
  test_names();
  return check_summary("test_codec");
}
