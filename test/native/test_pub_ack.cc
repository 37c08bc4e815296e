// parse_pub_ack (pub_ack.h): the JetStream publish answers as nats-server
// writes them, byte for byte, and what each means to the sink.
#include "pub_ack.h"

#include <cstring>

#include "check.h"

namespace {

msgs::PubAck parse(const char* s) { return msgs::parse_pub_ack(s, strlen(s)); }

}  // namespace

int main() {
  using msgs::PubAck;
  CHECK(msgs::parse_pub_ack("", 0) == PubAck::kNoResponders);
  CHECK(parse(R"({"stream":"S", "seq":5})") == PubAck::kStored);
  CHECK(parse(R"({"stream":"S", "domain":"hub", "seq":12345678901})") == PubAck::kStored);
  CHECK(parse(R"({"stream":"S", "seq":5,"duplicate": true})") == PubAck::kDuplicate);
  CHECK(parse(R"({"stream":"S", "seq":5,"duplicate": false})") == PubAck::kStored);
  // A stream or domain named like a key is a value, not the key.
  CHECK(parse(R"({"stream":"S", "domain":"seq", "seq":7})") == PubAck::kStored);
  CHECK(parse(R"({"stream":"error", "seq":7})") == PubAck::kStored);
  CHECK(parse(R"({"stream":"error", "seq":7,"duplicate": true})") == PubAck::kDuplicate);

  // An id staged for a proposal not stored yet: never taken as stored.
  CHECK(parse(R"({"stream":"S", "seq":0,"duplicate": true})") == PubAck::kInProcess);
  CHECK(parse(R"({"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"},"stream":"S"})") ==
        PubAck::kInProcess);

  CHECK(parse(R"({"error":{"code":503,"err_code":10077,"description":"JetStream system temporarily unavailable"},"stream":"S"})") ==
        PubAck::kUnavailable);
  CHECK(parse(R"({"error":{"code":400,"err_code":10060,"description":"expected stream does not match"},"stream":"S"})") ==
        PubAck::kRefused);
  // Not an acknowledgement at all, or one without a usable sequence.
  CHECK(parse(R"({"stream":"S"})") == PubAck::kRefused);
  CHECK(parse(R"({"stream":"S", "seq":0})") == PubAck::kRefused);
  CHECK(parse(R"({"stream":"S", "seq":x})") == PubAck::kRefused);
  CHECK(parse(R"({"stream":"S", "seq":)") == PubAck::kRefused);
  // A reply cut right after "duplicate": no out-of-bounds read.
  CHECK(parse(R"({"stream":"S", "seq":5,"duplicate": tr)") == PubAck::kStored);
  return check_summary("test_pub_ack");
}
