// fuzz_records: the on-disk record decoder (record::decode) and the recovery
// scan the file writer runs on start (record::scan), native/record.cc.
//
// Input: byte 0 picks the mode.
//  - even: raw. decode() on the rest, scan() on the rest and on a valid file
//    header followed by the rest.
//  - odd: structured. The rest describes records (sequence numbers, names,
//    payloads) that are encoded with record::encode, so CRCs are right, then
//    damaged (truncated, bytes flipped, zeroed, garbage or a copied record
//    inserted); scan() must agree with what was built.
// Checks (docs/file-format.md, record.h):
//  - decode: the result follows the documented check order; kOk gives
//    size == 8 + body_len <= n, name/payload inside the record, payload_len ==
//    body_len - 29 - name_len, and record::encode of the fields reproduces the
//    bytes; a kOk record's strict prefixes are kTruncated; a bad length is
//    kBad on every prefix of 8 bytes or more.
//  - scan: valid_end <= n; header_ok iff check_file_header, and then
//    valid_end >= 16; the records in [16, valid_end) decode with strictly
//    increasing seq and match records/first_seq/last_seq; valid_end == n means
//    neither torn nor corrupt, valid_end < n exactly one of them; torn:
//    tail_bytes == n - valid_end and no record the documented search would
//    accept lies after valid_end; corrupt: valid_end < next_valid <= n, and the
//    record there is the first the search accepts; max_seq >= last_seq (record.h:
//    "highest seq of any valid record"); and
//    re-scanning [0, valid_end) is clean with the same records.
//  - structured: an undamaged file scans clean (or corrupt at the first seq
//    that does not increase, with next_valid just after that record); a file
//    cut short keeps exactly the whole records before the cut.
#include <algorithm>
#include <vector>

#include "crc32c.h"
#include "fuzz_common.h"
#include "record.h"

using namespace msgs::record;
using fuzz::Exact;

namespace {

constexpr size_t kMinRecord = kRecordHeaderSize + kBodyFixedSize;  // 37

bool length_impossible(uint32_t body_len) {
  return body_len < kBodyFixedSize || body_len > kMaxBodyLen;
}

// The documented check order of decode().
Decode expect_decode(const uint8_t* p, size_t n) {
  if (n < 8) return Decode::kTruncated;
  uint32_t body_len = fuzz::le32(p);
  if (length_impossible(body_len)) return Decode::kBad;
  if (n - 8 < body_len) return Decode::kTruncated;
  if (p[8 + 28] > body_len - kBodyFixedSize) return Decode::kBad;
  if (fuzz::le32(p + 4) != msgs::crc32c(0, p + 8, body_len)) return Decode::kBad;
  return Decode::kOk;
}

Decode checked_decode(const uint8_t* p, size_t n, View* out) {
  View v;
  std::memset(&v, 0xa5, sizeof v);
  Decode d = decode(p, n, &v);
  FUZZ_CHECK(d == expect_decode(p, n));
  if (d == Decode::kOk) {
    uint32_t body_len = fuzz::le32(p);
    FUZZ_CHECK(v.size == 8 + size_t(body_len) && v.size <= n && v.size >= kMinRecord);
    FUZZ_CHECK(v.seq == fuzz::le64(p + 8) && v.time_us == fuzz::le64(p + 16) &&
               v.client_id == fuzz::le32(p + 24) && v.msg_id == fuzz::le64(p + 28) &&
               v.name_len == p[36]);
    FUZZ_CHECK(v.name == p + kMinRecord && v.payload == v.name + v.name_len);
    FUZZ_CHECK(uint64_t(v.payload_len) == uint64_t(body_len) - kBodyFixedSize - v.name_len);
    FUZZ_CHECK(v.payload + v.payload_len == p + v.size);
    FUZZ_CHECK(v.payload_len <= kMaxPayload + 255);
    FUZZ_CHECK(record_size(v.name_len, v.payload_len) == v.size);
    Exact re(v.size);
    FUZZ_CHECK(encode(re.data(), v.seq, v.time_us, v.client_id, v.msg_id, v.name, v.name_len,
                      v.payload, v.payload_len) == v.size);
    FUZZ_CHECK(std::memcmp(re.data(), p, v.size) == 0);
  }
  // Prefixes.
  auto prefix = [&](size_t k) {
    if (k >= n) return;
    View vk;
    Decode dk = decode(p, k, &vk);
    if (d == Decode::kOk) FUZZ_CHECK(k < v.size ? dk == Decode::kTruncated : dk == Decode::kOk);
    else if (d == Decode::kTruncated) FUZZ_CHECK(dk == Decode::kTruncated);
    else if (n >= 8 && length_impossible(fuzz::le32(p)))
      FUZZ_CHECK(dk == (k < 8 ? Decode::kTruncated : Decode::kBad));
    else FUZZ_CHECK(dk == Decode::kTruncated || dk == Decode::kBad);
  };
  prefix(0);
  prefix(7);
  prefix(8);
  if (d == Decode::kOk) {
    prefix(v.size - 1);
    prefix(v.size);
  }
  if (out) *out = v;
  return d;
}

// FUZZ_IGNORE=<id>[,<id>...] turns off the check for a known, reported bug
// so a long run can look for others. Ids:
//   seq-wrap: find_next_valid's seq window last_seq + k wraps past
//             UINT64_MAX, so a valid record after damage is missed and the
//             damage is called a torn tail (fuzz/regressions/records/).
//   clean-max-seq: scan() of a clean file leaves max_seq at 0, though
//             record.h says it is the highest seq of any valid record.
bool ignored(const char* id) {
  static const char* list = std::getenv("FUZZ_IGNORE");
  return list && std::strstr(list, id);
}

uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

// Would the documented search for a valid record after damage accept the
// record at offset `off`? (length in bounds and inside the file, seq in
// (after_seq, after_seq + k] with k the number of minimal records that fit
// in the rest of the file from `from`, and the record decodes.) k here is the
// smallest reading of "the rest of the file", so a miss is always a bug.
bool search_accepts(const uint8_t* p, size_t n, size_t from, size_t off, uint64_t after_seq) {
  if (off + kMinRecord > n) return false;
  uint32_t body_len = fuzz::le32(p + off);
  if (length_impossible(body_len) || body_len > n - off - kRecordHeaderSize) return false;
  uint64_t seq = fuzz::le64(p + off + kRecordHeaderSize);
  if (seq <= after_seq || seq > sat_add(after_seq, (n - from) / kMinRecord)) return false;
  View v;
  return decode(p + off, n - off, &v) == Decode::kOk;
}

Scan checked_scan(const uint8_t* p, size_t n) {
  Scan s = scan(p, n);
  FUZZ_CHECK(s.valid_end <= n);
  if (!check_file_header(p, n)) {
    FUZZ_CHECK(!s.header_ok && s.valid_end == 0 && s.records == 0 && !s.torn && !s.corrupt);
    return s;
  }
  FUZZ_CHECK(s.header_ok);
  FUZZ_CHECK(s.valid_end >= kFileHeaderSize);

  // The good records, walked independently.
  size_t off = kFileHeaderSize;
  uint64_t count = 0, first = 0, last = 0;
  while (off < s.valid_end) {
    View v;
    FUZZ_CHECK(checked_decode(p + off, n - off, &v) == Decode::kOk);
    FUZZ_CHECK(count == 0 || v.seq > last);
    if (count == 0) first = v.seq;
    last = v.seq;
    count++;
    off += v.size;
  }
  FUZZ_CHECK(off == s.valid_end);
  FUZZ_CHECK(count == s.records && first == s.first_seq && last == s.last_seq);
  if (!(s.valid_end == n && ignored("clean-max-seq"))) FUZZ_CHECK(s.max_seq >= s.last_seq);

  const size_t ve = size_t(s.valid_end);
  if (ve == n) {
    FUZZ_CHECK(!s.torn && !s.corrupt && s.tail_bytes == 0);
  } else {
    FUZZ_CHECK(s.torn != s.corrupt);
    const uint64_t span = (n - ve - 1) / kMinRecord + 1;
    const bool window_wraps = s.last_seq > UINT64_MAX - span;
    View at;
    Decode d = checked_decode(p + ve, n - ve, &at);
    if (d == Decode::kOk) {
      // Whole but out of order: corrupt, resuming right after it.
      FUZZ_CHECK(s.records > 0 && at.seq <= s.last_seq);
      FUZZ_CHECK(s.corrupt && s.next_valid == ve + at.size);
    }
    if (s.torn) {
      FUZZ_CHECK(s.tail_bytes == n - ve);
      if (!(window_wraps && ignored("seq-wrap")))
        for (size_t o = ve + 1; o + kMinRecord <= n; o++)
          FUZZ_CHECK(!search_accepts(p, n, ve + 1, o, s.last_seq));
    } else {
      FUZZ_CHECK(s.next_valid > ve && s.next_valid <= n);
      if (d != Decode::kOk) {
        View nv;
        FUZZ_CHECK(s.next_valid < n);
        FUZZ_CHECK(checked_decode(p + s.next_valid, n - s.next_valid, &nv) == Decode::kOk);
        FUZZ_CHECK(nv.seq > s.last_seq && s.max_seq >= nv.seq);
        if (!(window_wraps && ignored("seq-wrap")))
          for (size_t o = ve + 1; o < s.next_valid; o++)
            FUZZ_CHECK(!search_accepts(p, n, ve + 1, o, s.last_seq));
      }
    }
  }

  // Cutting at valid_end leaves a clean log with the same records.
  if (ve < n) {
    Scan c = scan(p, ve);
    FUZZ_CHECK(c.header_ok && c.valid_end == ve && !c.torn && !c.corrupt);
    FUZZ_CHECK(c.records == s.records && c.first_seq == s.first_seq && c.last_seq == s.last_seq);
  }
  return s;
}

void raw(const uint8_t* data, size_t size) {
  {
    Exact in(data, size);
    checked_decode(in.data(), in.n, nullptr);
    checked_scan(in.data(), in.n);
  }
  Exact file(kFileHeaderSize + size);
  encode_file_header(file.data());
  FUZZ_CHECK(check_file_header(file.data(), kFileHeaderSize));
  if (size) std::memcpy(file.data() + kFileHeaderSize, data, size);
  checked_scan(file.data(), file.n);
}

void structured(const uint8_t* data, size_t size) {
  fuzz::Reader rd(data, size);
  uint64_t seq;
  switch (rd.u8() % 4) {
    case 0: seq = rd.u8(); break;
    case 1: seq = UINT64_MAX - rd.u8(); break;
    case 2: seq = rd.u64(); break;
    default: seq = 0; break;
  }
  size_t nrec = rd.u8() % 12;
  std::vector<uint8_t> f(kFileHeaderSize);
  encode_file_header(f.data());
  std::vector<size_t> bound{kFileHeaderSize};  // record i is [bound[i], bound[i+1])
  size_t first_break = nrec;                   // first record whose seq does not increase
  uint64_t prev = 0;
  uint8_t name[255];
  std::vector<uint8_t> payload;
  for (size_t i = 0; i < nrec; i++) {
    uint8_t ctl = rd.u8();
    if (i > 0) {
      if ((ctl & 7) == 0) seq -= rd.u8() % 3;   // repeat or go back
      else seq += 1 + (ctl >> 3 & 3);           // may wrap past UINT64_MAX
    }
    if (i > 0 && seq <= prev && first_break == nrec) first_break = i;
    prev = seq;
    uint8_t name_len = rd.u8();
    if (!(ctl & 0x20)) name_len %= 8;
    uint32_t payload_len = (ctl & 0x40) ? rd.u16() % 1024 : rd.u8() % 32;
    rd.bytes(name, name_len);
    payload.resize(payload_len);
    rd.bytes(payload.data(), payload_len);
    size_t at = f.size();
    f.resize(at + record_size(name_len, payload_len));
    size_t w = encode(f.data() + at, seq, 1700000000000000ull + i, ctl, i, name, name_len,
                      payload.data(), payload_len);
    FUZZ_CHECK(w == f.size() - at);
    bound.push_back(f.size());
  }

  // Damage.
  size_t nops = rd.u8() % 4;
  bool damaged = false;
  bool only_cut = true;
  size_t cut = f.size();
  for (size_t i = 0; i < nops; i++) {
    uint8_t kind = rd.u8() % 5;
    size_t pos = rd.u16() % (f.size() + 1);
    uint8_t k = rd.u8();
    damaged = true;
    switch (kind) {
      case 0:  // truncate
        f.resize(pos);
        cut = std::min(cut, pos);
        continue;
      case 1:  // flip bits of one byte
        if (pos < f.size()) f[pos] ^= uint8_t(k | 1);
        break;
      case 2: {  // insert garbage
        std::vector<uint8_t> g(k % 64);
        rd.bytes(g.data(), g.size());
        f.insert(f.begin() + pos, g.begin(), g.end());
        break;
      }
      case 3:  // zero a run
        for (size_t j = pos; j < f.size() && j < pos + k; j++) f[j] = 0;
        break;
      default: {  // insert a copy of a whole record
        if (nrec == 0) break;
        size_t r = k % nrec;
        if (bound[r + 1] > f.size()) break;
        std::vector<uint8_t> copy(f.begin() + bound[r], f.begin() + bound[r + 1]);
        f.insert(f.begin() + pos, copy.begin(), copy.end());
        break;
      }
    }
    only_cut = false;
  }

  // FUZZ_DUMP=path writes the built file image (to look at a crash input).
  static const char* dump = std::getenv("FUZZ_DUMP");
  if (dump) {
    if (FILE* out = std::fopen(dump, "wb")) {
      std::fwrite(f.data(), 1, f.size(), out);
      std::fclose(out);
    }
  }
  Exact img(f.data(), f.size());
  Scan s = checked_scan(img.data(), img.n);
  if (!damaged) {
    FUZZ_CHECK(s.header_ok);
    FUZZ_CHECK(s.records == first_break && s.valid_end == bound[first_break]);
    if (first_break == nrec) {
      FUZZ_CHECK(!s.torn && !s.corrupt && s.valid_end == f.size());
    } else {
      FUZZ_CHECK(s.corrupt && s.next_valid == bound[first_break + 1]);
    }
  } else if (only_cut && cut >= kFileHeaderSize) {
    // Whole records before the cut survive; the walk stops at the first
    // record the cut reaches (or at the first seq break before it).
    size_t whole = 0;
    while (whole < nrec && bound[whole + 1] <= cut) whole++;
    size_t keep = std::min(whole, first_break);
    FUZZ_CHECK(s.header_ok && s.records == keep && s.valid_end == bound[keep]);
    if (keep == whole && cut == bound[whole]) FUZZ_CHECK(!s.torn && !s.corrupt);
    else FUZZ_CHECK(s.torn || s.corrupt);
  } else if (only_cut) {
    FUZZ_CHECK(!s.header_ok);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    raw(data, 0);
    return 0;
  }
  if (data[0] & 1) structured(data + 1, size - 1);
  else raw(data + 1, size - 1);
  return 0;
}
