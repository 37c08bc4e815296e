#include "pub_ack.h"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace msgs {

namespace {

const char* find(const char* data, size_t len, const char* what) {
  return static_cast<const char*>(memmem(data, len, what, strlen(what)));
}

// The value after `key` (a quoted name and its colon), past the space
// nats-server may write (`"seq":5`, `"duplicate": true`); null when absent.
const char* value_of(const char* data, size_t len, const char* key) {
  const char* end = data + len;
  const char* p = find(data, len, key);
  if (!p) return nullptr;
  p += strlen(key);
  while (p < end && *p == ' ') p++;
  return p;
}

// A clustered stream's leader notes a message's id with sequence 0 before
// it proposes the message, and fills in the sequence once it is stored.
// Meanwhile a publish with the same id finds sequence 0: older nats-servers
// (2.9 among them) answer it as a duplicate of sequence 0, newer ones with
// error 10158 ("duplicate message id is in process"). Neither is stored:
// if the proposal is lost with a leader change, the first never will be.
constexpr const char* kInProcessCode = "\"err_code\":10158";

}  // namespace

PubAck parse_pub_ack(const char* data, size_t len) {
  if (len == 0) return PubAck::kNoResponders;
  const char* end = data + len;
  if (find(data, len, "\"error\":")) {  // the key: a stream may be named "error"
    if (find(data, len, kInProcessCode)) return PubAck::kInProcess;
    return find(data, len, "\"code\":503") ? PubAck::kUnavailable : PubAck::kRefused;
  }
  const char* seq = value_of(data, len, "\"seq\":");
  if (!seq) return PubAck::kRefused;
  uint64_t n = 0;
  if (std::from_chars(seq, end, n).ec != std::errc()) return PubAck::kRefused;
  const char* dup = value_of(data, len, "\"duplicate\":");
  bool duplicate = dup && end - dup >= 4 && memcmp(dup, "true", 4) == 0;
  if (n == 0) return duplicate ? PubAck::kInProcess : PubAck::kRefused;  // no message is stored at 0
  return duplicate ? PubAck::kDuplicate : PubAck::kStored;
}

}  // namespace msgs
