// Log record format: golden vectors (test/vectors/records.txt), decode
// robustness (every truncation, every bit flip) and scan() classification.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "record.h"

using namespace msgs::record;
using Bytes = std::vector<uint8_t>;

static Bytes slice(const uint8_t* p, size_t n) { return Bytes(p, p + n); }

struct Rec {
  uint64_t seq, time_us;
  uint32_t client_id;
  uint64_t msg_id;
  std::string name;
  Bytes payload;
};

static void append(Bytes& file, const Rec& r) {
  size_t at = file.size();
  file.resize(at + record_size(r.name.size(), r.payload.size()));
  size_t n = encode(file.data() + at, r.seq, r.time_us, r.client_id, r.msg_id,
                    reinterpret_cast<const uint8_t*>(r.name.data()), uint8_t(r.name.size()),
                    r.payload.data(), uint32_t(r.payload.size()));
  CHECK_EQ(n, file.size() - at);
}

static Bytes new_file() {
  Bytes f(kFileHeaderSize);
  encode_file_header(f.data());
  return f;
}

static Rec make_rec(std::mt19937& rng, uint64_t seq) {
  Rec r{seq, 1700000000000000ull + seq, uint32_t(rng()), (uint64_t(rng()) << 32) | rng(), "", {}};
  r.name.assign(rng() % 20, char('a' + seq % 26));
  r.payload.resize(rng() % 300);
  for (auto& b : r.payload) b = uint8_t(rng());
  return r;
}

// ---- golden vectors ----

static void test_vectors() {
  int seen = 0;
  for (const auto& v : check::load_vectors("records.txt")) {
    check::context() = "records.txt:" + std::to_string(v.line) + " " + v.kind;
    seen++;
    Bytes hex = v.bytes("hex");
    View view{};
    if (v.kind == "file_header") {
      uint8_t out[kFileHeaderSize];
      encode_file_header(out);
      CHECK_EQ(slice(out, kFileHeaderSize), hex);
      CHECK(check_file_header(hex.data(), hex.size()));
    } else if (v.kind == "bad_file_header") {
      CHECK(!check_file_header(hex.data(), hex.size()));
    } else if (v.kind == "record") {
      Bytes name = v.bytes("name_hex"), payload = v.bytes("payload_hex");
      Bytes out(record_size(name.size(), payload.size()));
      CHECK_EQ(encode(out.data(), v.num("seq"), v.num("time_us"), uint32_t(v.num("client_id")),
                      v.num("msg_id"), name.data(), uint8_t(name.size()), payload.data(),
                      uint32_t(payload.size())),
               out.size());
      CHECK_EQ(out, hex);
      CHECK(decode(hex.data(), hex.size(), &view) == Decode::kOk);
      CHECK_EQ(view.seq, v.num("seq"));
      CHECK_EQ(view.time_us, v.num("time_us"));
      CHECK_EQ(view.client_id, v.num("client_id"));
      CHECK_EQ(view.msg_id, v.num("msg_id"));
      CHECK_EQ(slice(view.name, view.name_len), name);
      CHECK_EQ(slice(view.payload, view.payload_len), payload);
      CHECK_EQ(view.size, hex.size());
    } else if (v.kind == "record_truncated") {
      CHECK(decode(hex.data(), hex.size(), &view) == Decode::kTruncated);
    } else if (v.kind == "record_bad") {
      CHECK(decode(hex.data(), hex.size(), &view) == Decode::kBad);
    } else {
      CHECK(!"unknown vector kind");
    }
  }
  check::context().clear();
  CHECK(seen > 15);
}

// ---- decode ----

static void test_round_trip() {
  std::mt19937 rng(1);
  Bytes file;
  std::vector<Rec> recs;
  for (uint64_t s = 1; s <= 200; s++) {
    recs.push_back(make_rec(rng, s));
    append(file, recs.back());
  }
  size_t off = 0;
  int bad = 0;
  for (const Rec& r : recs) {
    View v{};
    if (decode(file.data() + off, file.size() - off, &v) != Decode::kOk) { bad++; break; }
    if (v.seq != r.seq || v.time_us != r.time_us || v.client_id != r.client_id || v.msg_id != r.msg_id ||
        std::string(reinterpret_cast<const char*>(v.name), v.name_len) != r.name ||
        slice(v.payload, v.payload_len) != r.payload || v.size != record_size(r.name.size(), r.payload.size()))
      bad++;
    off += v.size;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(off, file.size());
}

static void test_truncation_and_bit_flips() {
  Bytes rec;
  append(rec, Rec{42, 1700000000000000ull, 7, 99, "orders", Bytes{'h', 'e', 'l', 'l', 'o', 0, 255}});
  View v{};
  CHECK(decode(rec.data(), rec.size(), &v) == Decode::kOk);

  int not_truncated = 0;
  for (size_t n = 0; n < rec.size(); n++)
    if (decode(rec.data(), n, &v) != Decode::kTruncated) not_truncated++;
  CHECK_EQ(not_truncated, 0);

  // A flipped bit in the CRC or the body is always kBad. One in the length
  // field makes the record longer (kTruncated: more bytes than there are) or
  // shorter/impossible (kBad); never kOk.
  int wrong = 0;
  for (size_t byte = 0; byte < rec.size(); byte++)
    for (int bit = 0; bit < 8; bit++) {
      Bytes m = rec;
      m[byte] ^= uint8_t(1 << bit);
      Decode d = decode(m.data(), m.size(), &v);
      if (byte >= 4) {
        if (d != Decode::kBad) wrong++;
      } else {
        uint32_t len = uint32_t(m[0]) | uint32_t(m[1]) << 8 | uint32_t(m[2]) << 16 | uint32_t(m[3]) << 24;
        bool longer = len > rec.size() - kRecordHeaderSize && len <= kMaxBodyLen;
        if (d != (longer ? Decode::kTruncated : Decode::kBad)) wrong++;
      }
    }
  CHECK_EQ(wrong, 0);
}

static void test_limits() {
  // Largest name and an empty payload; the smallest possible record.
  Bytes rec;
  append(rec, Rec{1, 2, 3, 4, std::string(255, 'x'), {}});
  View v{};
  CHECK(decode(rec.data(), rec.size(), &v) == Decode::kOk);
  CHECK_EQ(v.name_len, 255);
  CHECK_EQ(v.payload_len, 0u);
  Bytes small;
  append(small, Rec{1, 2, 3, 4, "", {}});
  CHECK_EQ(small.size(), kRecordHeaderSize + kBodyFixedSize);
  CHECK(decode(small.data(), small.size(), &v) == Decode::kOk);
  CHECK_EQ(kMaxBodyLen, kBodyFixedSize + 255 + (64u << 20));
}

// ---- scan ----

static void test_scan_header() {
  Bytes f = new_file();
  Scan s = scan(f.data(), f.size());
  CHECK(s.header_ok);
  CHECK_EQ(s.valid_end, kFileHeaderSize);
  CHECK_EQ(s.records, 0u);
  CHECK(!s.torn && !s.corrupt);
  for (size_t n = 0; n < kFileHeaderSize; n++) CHECK(!scan(f.data(), n).header_ok);
  f[3] ^= 1;
  s = scan(f.data(), f.size());
  CHECK(!s.header_ok);
  CHECK_EQ(s.valid_end, 0u);
}

static void test_scan_clean() {
  std::mt19937 rng(2);
  Bytes f = new_file();
  for (uint64_t s = 10; s < 110; s++) append(f, make_rec(rng, s * 3));
  Scan s = scan(f.data(), f.size());
  CHECK(s.header_ok);
  CHECK_EQ(s.records, 100u);
  CHECK_EQ(s.first_seq, 30u);
  CHECK_EQ(s.last_seq, 327u);
  CHECK_EQ(s.valid_end, f.size());
  CHECK(!s.torn && !s.corrupt);
  CHECK_EQ(s.tail_bytes, 0u);
}

// Every prefix of a last record (a write cut short) is a torn tail.
static void test_scan_torn_every_length() {
  std::mt19937 rng(3);
  Bytes f = new_file();
  for (uint64_t s = 1; s <= 5; s++) append(f, make_rec(rng, s));
  size_t good = f.size();
  Bytes last;
  append(last, Rec{6, 6, 6, 6, "tail", Bytes(100, 0xAB)});
  int wrong = 0;
  for (size_t k = 1; k < last.size(); k++) {
    Bytes g = f;
    g.insert(g.end(), last.begin(), last.begin() + k);
    Scan s = scan(g.data(), g.size());
    if (!s.header_ok || s.records != 5 || s.valid_end != good || !s.torn || s.corrupt ||
        s.tail_bytes != k || s.last_seq != 5)
      wrong++;
  }
  CHECK_EQ(wrong, 0);
  // And the whole record makes it clean again.
  f.insert(f.end(), last.begin(), last.end());
  Scan s = scan(f.data(), f.size());
  CHECK(!s.torn && !s.corrupt && s.records == 6);
}

static void test_scan_garbage_tail() {
  std::mt19937 rng(4);
  Bytes f = new_file();
  for (uint64_t s = 1; s <= 20; s++) append(f, make_rec(rng, s));
  size_t good = f.size();
  for (size_t len : {1, 7, 8, 37, 100, 4096, 100000}) {
    Bytes g = f;
    for (size_t i = 0; i < len; i++) g.push_back(uint8_t(rng()));
    Scan s = scan(g.data(), g.size());
    CHECK(s.torn);
    CHECK(!s.corrupt);
    CHECK_EQ(s.valid_end, good);
    CHECK_EQ(s.tail_bytes, len);
    // Zeros (a file extended but never written) are torn too.
    Bytes z = f;
    z.resize(z.size() + len, 0);
    Scan sz = scan(z.data(), z.size());
    CHECK(sz.torn && !sz.corrupt && sz.tail_bytes == len);
  }
}

static void test_scan_corrupt_middle() {
  std::mt19937 rng(5);
  Bytes f = new_file();
  std::vector<size_t> offs;
  for (uint64_t s = 1; s <= 10; s++) {
    offs.push_back(f.size());
    append(f, make_rec(rng, s));
  }
  offs.push_back(f.size());
  int wrong = 0;
  // Damage record i (one bit, in its length, CRC or body): the scan stops
  // there and finds record i+1 (unless the damage itself looks like a record).
  for (size_t i = 0; i + 1 < 10; i++)
    for (size_t at : {size_t(0), size_t(5), size_t(9), size_t(30)}) {
      Bytes g = f;
      g[offs[i] + at] ^= 0x10;
      Scan s = scan(g.data(), g.size());
      if (!s.header_ok || s.records != i || s.valid_end != offs[i] || !s.corrupt || s.torn ||
          s.next_valid != offs[i + 1])
        wrong++;
    }
  CHECK_EQ(wrong, 0);
  // Damage in the last record has nothing valid after it: torn.
  Bytes g = f;
  g[offs[9] + 20] ^= 1;
  Scan s = scan(g.data(), g.size());
  CHECK(s.torn && !s.corrupt);
  CHECK_EQ(s.valid_end, offs[9]);
  CHECK_EQ(s.tail_bytes, f.size() - offs[9]);
  // A whole garbage region between records.
  Bytes h(f.begin(), f.begin() + offs[4]);
  for (int i = 0; i < 5000; i++) h.push_back(uint8_t(rng()));
  size_t resume = h.size();
  h.insert(h.end(), f.begin() + offs[4], f.end());
  s = scan(h.data(), h.size());
  CHECK(s.corrupt && !s.torn);
  CHECK_EQ(s.valid_end, offs[4]);
  CHECK_EQ(s.next_valid, resume);
}

// Sequence numbers must increase strictly; a record that breaks the order is
// bad even though its CRC is fine.
static void test_scan_seq_order() {
  std::mt19937 rng(6);
  for (uint64_t bad_seq : {uint64_t(2), uint64_t(3), uint64_t(0)}) {
    Bytes f = new_file();
    append(f, make_rec(rng, 1));
    append(f, make_rec(rng, 2));
    append(f, make_rec(rng, 3));
    size_t x = f.size();
    append(f, make_rec(rng, bad_seq));   // not above 3
    size_t y = f.size();
    append(f, make_rec(rng, 4));
    Scan s = scan(f.data(), f.size());
    CHECK_EQ(s.records, 3u);
    CHECK_EQ(s.last_seq, 3u);
    CHECK_EQ(s.valid_end, x);
    CHECK(s.corrupt);
    CHECK_EQ(s.next_valid, y);
  }
  // First record may carry any seq, including 0.
  Bytes f = new_file();
  append(f, make_rec(rng, 0));
  append(f, make_rec(rng, 1));
  Scan s = scan(f.data(), f.size());
  CHECK_EQ(s.records, 2u);
  CHECK_EQ(s.first_seq, 0u);
  CHECK(!s.torn && !s.corrupt);
}

int main() {
  test_vectors();
  test_round_trip();
  test_truncation_and_bit_flips();
  test_limits();
  test_scan_header();
  test_scan_clean();
  test_scan_torn_every_length();
  test_scan_garbage_tail();
  test_scan_corrupt_middle();
  test_scan_seq_order();
  return check_summary("test_record");
}
