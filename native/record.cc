// On-disk record format (see record.h and docs/file-format.md).
#include "record.h"

#include <cstring>

#include "crc32c.h"

namespace msgs {
namespace record {
namespace {

const uint8_t kMagic[8] = {'M', 'S', 'G', 'S', 'L', 'O', 'G', 0};
constexpr uint16_t kFormatVersion = 1;
constexpr size_t kHeaderCrcOffset = 12;  // the CRC covers bytes 0..11

// Little-endian helpers; byte by byte, so alignment and host order do not
// matter (records sit at arbitrary offsets in the writer's buffer).
inline uint16_t get_u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }

inline uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

inline uint64_t get_u64(const uint8_t* p) {
  return uint64_t(get_u32(p)) | uint64_t(get_u32(p + 4)) << 32;
}

inline uint8_t* put_u16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
  return p + 2;
}

inline uint8_t* put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = uint8_t(v >> (8 * i));
  return p + 4;
}

inline uint8_t* put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = uint8_t(v >> (8 * i));
  return p + 8;
}

// A body length no record can have. Checked before anything else so that
// scanning garbage byte by byte stays cheap.
inline bool body_len_impossible(uint32_t body_len) {
  return body_len < kBodyFixedSize || body_len > kMaxBodyLen;
}

// First offset in [from, n) where a whole record decodes, or n if none.
// A record after damage can only carry a sequence number a little above the
// last good one (at most one per minimal record that fits in the damaged
// span), so candidates are filtered on length and seq before any CRC: random
// bytes almost never pass, which keeps this linear in the damaged size.
size_t find_next_valid(const uint8_t* p, size_t n, size_t from, uint64_t after_seq) {
  const size_t min_record = kRecordHeaderSize + kBodyFixedSize;
  const uint64_t span = (n - from) / min_record + 1;
  // Saturating: a seq near 2^64 must not wrap the bound and hide every candidate.
  const uint64_t max_seq = after_seq > UINT64_MAX - span ? UINT64_MAX : after_seq + span;
  for (size_t off = from; off + min_record <= n; off++) {
    uint32_t body_len = get_u32(p + off);
    if (body_len_impossible(body_len) || body_len > n - off - kRecordHeaderSize) continue;
    uint64_t seq = get_u64(p + off + kRecordHeaderSize);
    if (seq <= after_seq || seq > max_seq) continue;
    View v;
    if (decode(p + off, n - off, &v) == Decode::kOk) return off;
  }
  return n;
}

}  // namespace

void encode_file_header(uint8_t out[kFileHeaderSize]) {
  std::memcpy(out, kMagic, 8);
  put_u16(out + 8, kFormatVersion);
  put_u16(out + 10, uint16_t(kFileHeaderSize));
  put_u32(out + kHeaderCrcOffset, crc32c(0, out, kHeaderCrcOffset));
}

bool check_file_header(const uint8_t* p, size_t n) {
  return n >= kFileHeaderSize && std::memcmp(p, kMagic, 8) == 0 &&
         get_u16(p + 8) == kFormatVersion && get_u16(p + 10) == kFileHeaderSize &&
         get_u32(p + kHeaderCrcOffset) == crc32c(0, p, kHeaderCrcOffset);
}

size_t encode(uint8_t* out, uint64_t seq, uint64_t time_us, uint32_t client_id,
              uint64_t msg_id, const uint8_t* name, uint8_t name_len,
              const uint8_t* payload, uint32_t payload_len) {
  uint32_t body_len = uint32_t(kBodyFixedSize + name_len + payload_len);
  uint8_t* body = out + kRecordHeaderSize;
  uint8_t* p = put_u64(body, seq);
  p = put_u64(p, time_us);
  p = put_u32(p, client_id);
  p = put_u64(p, msg_id);
  *p++ = name_len;
  if (name_len) std::memcpy(p, name, name_len);
  p += name_len;
  if (payload_len) std::memcpy(p, payload, payload_len);
  // Header last: the CRC needs the finished body.
  put_u32(out, body_len);
  put_u32(out + 4, crc32c(0, body, body_len));
  return kRecordHeaderSize + body_len;
}

Decode decode(const uint8_t* p, size_t n, View* out) {
  if (n < kRecordHeaderSize) return Decode::kTruncated;
  uint32_t body_len = get_u32(p);
  // Bounds before "is it all here": a garbage length must not make the
  // caller wait for (or read) up to 4 GiB that will never be a record.
  if (body_len_impossible(body_len)) return Decode::kBad;
  if (n - kRecordHeaderSize < body_len) return Decode::kTruncated;
  const uint8_t* body = p + kRecordHeaderSize;
  uint8_t name_len = body[28];
  if (name_len > body_len - kBodyFixedSize) return Decode::kBad;
  if (get_u32(p + 4) != crc32c(0, body, body_len)) return Decode::kBad;

  out->seq = get_u64(body);
  out->time_us = get_u64(body + 8);
  out->client_id = get_u32(body + 16);
  out->msg_id = get_u64(body + 20);
  out->name_len = name_len;
  out->name = body + kBodyFixedSize;
  out->payload = out->name + name_len;
  out->payload_len = uint32_t(body_len - kBodyFixedSize - name_len);
  out->size = kRecordHeaderSize + body_len;
  return Decode::kOk;
}

Scan scan(const uint8_t* p, size_t n) {
  Scan s;
  if (!check_file_header(p, n)) return s;
  s.header_ok = true;

  // Walk good records: decodable and with a seq above the previous one.
  size_t off = kFileHeaderSize;
  while (off < n) {
    View v;
    if (decode(p + off, n - off, &v) != Decode::kOk) break;
    if (s.records > 0 && v.seq <= s.last_seq) break;
    if (s.records == 0) s.first_seq = v.seq;
    s.last_seq = v.seq;
    s.records++;
    off += v.size;
  }
  s.valid_end = off;
  s.max_seq = s.last_seq;
  if (off == n) return s;

  // Something stops the walk at off. A record there that decodes but breaks
  // the sequence was written whole: that is corruption, never a torn write.
  // Otherwise, if a valid record exists anywhere after it, the damage is in
  // the middle (recovery must not cut there silently); if none does, it is a
  // torn tail from an interrupted write.
  View v;
  size_t next;
  if (decode(p + off, n - off, &v) == Decode::kOk) {
    next = off + v.size;
  } else {
    next = find_next_valid(p, n, off + 1, s.last_seq);
    if (next == n) {
      s.torn = true;
      s.tail_bytes = n - off;
      return s;
    }
  }
  s.corrupt = true;
  s.next_valid = next;
  // What follows the damage still counts for max_seq, so that a repaired log
  // never gives out a sequence number again.
  while (next < n) {
    if (decode(p + next, n - next, &v) == Decode::kOk) {
      if (v.seq > s.max_seq) s.max_seq = v.seq;
      next += v.size;
    } else {
      next = find_next_valid(p, n, next + 1, s.max_seq);
    }
  }
  return s;
}

namespace {

uint8_t* put_decimal(uint8_t* p, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = char('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = uint8_t(tmp[--n]);
  return p;
}

uint8_t* put_escaped(uint8_t* p, const uint8_t* s, size_t n, bool is_name) {
  static const char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    char e = 0;
    switch (c) {
      case '\\': e = '\\'; break;
      case '\n': e = 'n'; break;
      case '\r': e = 'r'; break;
      case '\t': e = 't'; break;
      case '\0': e = '0'; break;
      case ' ': e = is_name ? 's' : 0; break;
    }
    if (e) {
      *p++ = '\\';
      *p++ = uint8_t(e);
    } else if (c < 0x20 || c == 0x7f) {
      *p++ = '\\';
      *p++ = 'x';
      *p++ = uint8_t(kHex[c >> 4]);
      *p++ = uint8_t(kHex[c & 15]);
    } else {
      *p++ = c;
    }
  }
  return p;
}

}  // namespace

size_t encode_text(uint8_t* out, uint32_t client_id, uint64_t msg_id, const uint8_t* name,
                   uint8_t name_len, const uint8_t* payload, uint32_t payload_len) {
  uint8_t* p = put_decimal(out, client_id);
  *p++ = ' ';
  p = put_decimal(p, msg_id);
  *p++ = ' ';
  p = put_escaped(p, name, name_len, true);
  *p++ = ' ';
  p = put_escaped(p, payload, payload_len, false);
  *p++ = '\n';
  return size_t(p - out);
}

}  // namespace record
}  // namespace msgs
