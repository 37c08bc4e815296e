// On-disk record format (docs/file-format.md). Little-endian. A file starts
// with a 16-byte header; then records, each self-delimiting and checksummed:
//   u32 body_len | u32 crc32c(body) | body
//   body = u64 seq | u64 time_us | u32 client_id | u64 msg_id | u8 name_len |
//          name | payload
#pragma once
#include <cstddef>
#include <cstdint>

namespace msgs {
namespace record {

constexpr size_t kFileHeaderSize = 16;
constexpr size_t kRecordHeaderSize = 8;     // body_len + crc
constexpr size_t kBodyFixedSize = 29;       // seq, time, client, msg id, name_len
constexpr uint32_t kMaxPayload = 64u << 20; // largest payload a record may hold
constexpr uint32_t kMaxBodyLen = kBodyFixedSize + 255 + kMaxPayload;

inline size_t record_size(size_t name_len, size_t payload_len) {
  return kRecordHeaderSize + kBodyFixedSize + name_len + payload_len;
}

// "MSGSLOG\0" u16 version=1 u16 header_len=16 u32 crc32c(bytes 0..11)
void encode_file_header(uint8_t out[kFileHeaderSize]);
bool check_file_header(const uint8_t* p, size_t n);

// Writes one record at out (record_size() bytes); returns its size.
size_t encode(uint8_t* out, uint64_t seq, uint64_t time_us, uint32_t client_id,
              uint64_t msg_id, const uint8_t* name, uint8_t name_len,
              const uint8_t* payload, uint32_t payload_len);

struct View {
  uint64_t seq;
  uint64_t time_us;
  uint32_t client_id;
  uint64_t msg_id;
  const uint8_t* name;
  uint8_t name_len;
  const uint8_t* payload;
  uint32_t payload_len;
  size_t size;   // whole record
};

enum class Decode {
  kOk,
  kTruncated,  // fewer bytes than the record says (or than its header)
  kBad,        // impossible length or CRC mismatch
};
Decode decode(const uint8_t* p, size_t n, View* out);

// Result of scanning a whole file image (header + records).
struct Scan {
  bool header_ok = false;      // false: not a log file (or empty, see size)
  uint64_t valid_end = 0;      // offset just after the last good record
  uint64_t records = 0;
  uint64_t first_seq = 0;      // 0 when no records
  uint64_t last_seq = 0;
  // The first bad or truncated record, at valid_end, when valid_end < size:
  //  - torn: no valid record anywhere after it, so it is a torn tail that
  //    recovery may cut (tail_bytes = size - valid_end);
  //  - corrupt: a valid record follows it (corruption in the middle).
  bool torn = false;
  bool corrupt = false;
  uint64_t tail_bytes = 0;
  uint64_t next_valid = 0;     // when corrupt: offset of the next valid record
  uint64_t max_seq = 0;        // highest seq of any valid record, before or after damage
};
// Records must carry strictly increasing sequence numbers; one that does not
// counts as bad.
Scan scan(const uint8_t* p, size_t n);

// ---- text format (file.format 'text', the original server's lines) ----
//   <client_id> <msg_id> <name> <message>\n
// Escaped so that one message is always one line and every field reads back
// exactly: backslash -> \\, newline -> \n, CR -> \r, tab -> \t, NUL -> \0,
// other bytes below 0x20 and 0x7f -> \xHH; in the name also space -> \s.
inline size_t text_max_size(size_t name_len, size_t payload_len) {
  return 10 + 1 + 20 + 1 + 4 * name_len + 1 + 4 * payload_len + 1;
}
size_t encode_text(uint8_t* out, uint32_t client_id, uint64_t msg_id, const uint8_t* name,
                   uint8_t name_len, const uint8_t* payload, uint32_t payload_len);

}  // namespace record
}  // namespace msgs
